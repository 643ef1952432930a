"""Publishing with the real huggingface_hub client against the loopback Hub double."""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # the double speaks "regular" uploads only

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fal_double import media  # noqa: E402
from helpers import run_jobs  # noqa: E402
from hub_double import hub_double  # noqa: E402

from lorad import cli  # noqa: E402
from lorad.core import jobs  # noqa: E402
from lorad.generation import loras, ratings  # noqa: E402
from lorad.publish import card, loraconvert, publish_job  # noqa: E402
from lorad.publish.loraconvert import Tensor  # noqa: E402
from lorad.publish.publishers import PublishError  # noqa: E402
from lorad.training import lineage  # noqa: E402

METADATA = {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_learning_rate": "0.0002",
            "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit", "ss_steps": "400",
            "ss_epoch": "4", "ss_seed": "42", "ss_base_model_version": "wan",
            "ss_timestep_sampling": "shift", "ss_discrete_flow_shift": "3.0"}


@pytest.fixture
def hub(ws, monkeypatch):
    with hub_double() as double:
        ws.config_path.write_text(ws.config_path.read_text()
                                  + f'\n[publish]\nendpoint = "{double.url}"\n')
        monkeypatch.setenv("HF_TOKEN", double.token)
        yield double


@pytest.fixture
def checkpoint(ws, conn):
    """A pulled checkpoint of a Wan 2.2 high-noise run on a dataset version, with one
    well-rated and one badly rated generation."""
    now = time.time()
    conn.execute("INSERT INTO datasets (id, name, profile, trigger, created_at) VALUES"
                 " (1, 'truck', 'wan22-14b-720p', 'TRK', ?)", (now,))
    conn.execute("INSERT INTO dataset_versions (id, dataset_id, content_hash, manifest,"
                 " created_at) VALUES (1, 1, ?, ?, ?)",
                 ("ab" * 32, json.dumps({"clips": [{"id": 1}, {"id": 2}, {"id": 3}]}), now))
    conn.execute("INSERT INTO runs (id, dataset_version_id, name, config, state, created_at)"
                 " VALUES (1, 1, 'truck-r1', ?, 'finished', ?)",
                 (json.dumps({"task": "t2v-A14B", "expert": "high"}), now))
    path = ws.downloads_dir() / "truck-r1" / "truck-000004.safetensors"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(1)
    tensors = {}
    for module in ("lora_unet_blocks_0_self_attn_q", "lora_unet_blocks_0_ffn_0"):
        tensors[f"{module}.alpha"] = Tensor.from_float32("BF16", np.array(2.0))
        tensors[f"{module}.lora_down.weight"] = Tensor.from_float32("BF16",
                                                                   rng.normal(0, .02, (4, 8)))
        tensors[f"{module}.lora_up.weight"] = Tensor.from_float32("BF16",
                                                                 rng.normal(0, .02, (8, 4)))
    loraconvert.write(path, tensors, METADATA)
    conn.execute("INSERT INTO checkpoints (id, run_id, local_path, name, step, epoch, metadata,"
                 " state, created_at) VALUES (1, 1, ?, 'truck-000004.safetensors', 400, 4, ?,"
                 " 'local', ?)", (str(path), json.dumps(METADATA), now))
    lo = loras.add(conn, "truck-e4-test", "https://hf.example/t.safetensors", checkpoint_id=1)
    out = ws.downloads_dir() / "generations"
    out.mkdir(parents=True)
    for gen_id, stars in ((1, 5), (2, 1)):
        video = out / f"gen-{gen_id:06d}.mp4"
        video.write_bytes(media()["motion"])
        conn.execute("INSERT INTO generations (id, lora_id, checkpoint_id, endpoint, params,"
                     " scale, seed, status, prompt, output_path, created_at, updated_at) VALUES"
                     " (?, ?, 1, 'fal-ai/wan/v2.2-a14b/text-to-video/lora', '{}', 0.8, ?,"
                     " 'completed', ?, ?, ?, ?)",
                     (gen_id, lo.id, gen_id, f"TRK, a parked truck | take {gen_id}", str(video),
                      now, now))
        ratings.rate(conn, gen_id, stars=stars, verdict="approve" if stars > 3 else "retake")
    return path


def test_publish_uploads_both_formats_card_and_best_sample_and_registers(
        ws, conn, hub, checkpoint):
    job_id = publish_job.enqueue(conn, "truck-000004", "me/truck-lora", private=True)
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.state == "succeeded", job.error
    repo = hub.repos["me/truck-lora"]
    assert repo.private
    assert set(repo.files) == {"truck-000004.safetensors", "truck-000004-diffusers.safetensors",
                               "README.md", "samples/gen-000001.mp4"}
    assert repo.files["truck-000004.safetensors"] == checkpoint.read_bytes()
    card = repo.files["README.md"].decode()
    for expected in ("base_model: \"Wan-AI/Wan2.2-T2V-A14B\"", "instance_prompt: \"TRK\"",
                     "`TRK`", "high-noise expert", "| rank (network_dim) | `4` |",
                     "AdamW8bit", "ab" * 8, "3 clips", "samples/gen-000001.mp4",
                     "TRK, a parked truck / take 1"):
        assert expected in card, expected
    assert "gen-000002" not in card  # rated 1 star: not a showcase

    lora = loras.get(conn, "truck-000004")
    assert lora.repo == "me/truck-lora" and lora.trigger == "TRK" and lora.expert == "high"
    assert lora.private and "fal probably cannot download it" in lora.warning
    assert lora.base_model == "Wan-AI/Wan2.2-T2V-A14B" and lora.checkpoint_id == 1
    assert lora.url.endswith("/truck-000004-diffusers.safetensors")
    assert f"/resolve/{job.result['revision']}/" in lora.url  # pinned to the commit
    assert set(lora.files) == {"truck-000004.safetensors", "truck-000004-diffusers.safetensors"}
    got = httpx.get(lora.url, headers={"authorization": f"Bearer {hub.token}"},
                    follow_redirects=True)
    assert got.status_code == 200
    assert got.content == repo.files["truck-000004-diffusers.safetensors"]
    assert httpx.get(lora.url).status_code == 401  # private
    made = lineage.of_checkpoint(conn, lora.checkpoint_id).as_dict()
    assert made["dataset_version"] == "ab" * 32 and made["run"] == "truck-r1"
    assert not (ws.state_dir / "publish" / f"job-{job_id}").exists()


def test_no_convert_uploads_only_the_native_file(ws, conn, hub, checkpoint):
    publish_job.enqueue(conn, "1", "me/plain", convert=False, name="plain")
    run_jobs(ws)
    assert "plain-diffusers.safetensors" not in hub.repos["me/plain"].files
    assert loras.get(conn, "plain").url.endswith("/plain.safetensors")
    assert loras.get(conn, "plain").warning is None
    assert not hub.repos["me/plain"].private


def test_republishing_refreshes_the_registry_entry(ws, conn, hub, checkpoint):
    publish_job.enqueue(conn, "1", "me/truck", name="truck")
    run_jobs(ws)
    first = loras.get(conn, "truck").url
    publish_job.enqueue(conn, "1", "me/truck", name="truck")
    run_jobs(ws)
    assert len(hub.repos["me/truck"].commits) == 2
    assert loras.get(conn, "truck").url != first
    assert [lo.name for lo in loras.list_all(conn)].count("truck") == 1
    with pytest.raises(PublishError, match="choose another --name"):
        publish_job.enqueue(conn, "1", "someone/else", name="truck")


def test_missing_token_fails_clearly_without_a_request(ws, conn, hub, checkpoint,
                                                       monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    job_id = publish_job.enqueue(conn, "1", "me/x")
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.state == "failed" and "HF_TOKEN is not set" in job.error
    assert hub.requests == []


def test_a_wrong_token_is_not_retried_and_says_what_to_fix(ws, conn, hub, checkpoint,
                                                           monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    job_id = publish_job.enqueue(conn, "1", "me/x")
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.state == "failed" and job.attempts == 1
    assert "write token" in job.error and "hf_wrong" not in job.error


def test_a_hub_outage_is_retried(ws, conn, hub, checkpoint):
    hub.fail_next(503, 3, match="/commit/")
    job_id = publish_job.enqueue(conn, "1", "me/x")
    run_jobs(ws)
    assert jobs.get(conn, job_id).state == "succeeded"
    assert len(hub.repos["me/x"].commits) == 1


def test_unknown_checkpoint_and_bad_repo_are_refused_before_queueing(conn, checkpoint):
    with pytest.raises(PublishError, match="neither a checkpoint"):
        publish_job.enqueue(conn, "nope", "me/x")
    with pytest.raises(PublishError, match="owner/name"):
        publish_job.enqueue(conn, "1", "just-a-name")
    assert jobs.list_jobs(conn) == []


def test_cli_publish_waits_and_prints_the_result(ws, conn, hub, checkpoint, daemon_proc,
                                                 capsys):
    daemon_proc.start()
    code = cli.main(["-w", str(ws.root), "publish", "truck-000004", "--repo", "me/cli",
                     "--wait", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert result["commit_url"].startswith(hub.url)
    assert set(result["files"]) == set(hub.repos["me/cli"].files)


@pytest.mark.parametrize("repo,name,problem", [
    ("you/truck lora", None, "--repo"), ("a--b/x", None, "--repo"), ("me/x", "../../x", "--name"),
    ("me/x", "a/b", "--name"),
])
def test_bad_repo_or_name_is_refused_before_queueing(conn, checkpoint, repo, name, problem):
    with pytest.raises(PublishError, match=problem):
        publish_job.enqueue(conn, "1", repo, name=name)
    assert jobs.list_jobs(conn) == []


def test_republishing_records_the_new_lineage(ws, conn, hub, checkpoint):
    publish_job.enqueue(conn, "1", "me/truck", name="truck")
    run_jobs(ws)
    conn.execute("UPDATE runs SET config = ? WHERE id = 1",
                 (json.dumps({"task": "t2v-A14B", "expert": "low"}),))
    publish_job.enqueue(conn, "1", "me/truck", name="truck")
    run_jobs(ws)
    assert loras.get(conn, "truck").expert == "low"


def test_model_card_front_matter_survives_odd_prompts(tmp_path):
    import yaml

    src = card.Source(tmp_path / "x.safetensors", base_model="Wan-AI/Wan2.2-T2V-A14B",
                      trigger='T"RK: x')
    prompt = 'a "quoted": prompt\nwith a newline, --- dashes, tabs\t, \x85 NEL, \x9b CSI, ★'
    text = card.model_card(src, "x", {"x.safetensors": "it"},
                           [("samples/gen-000001.mp4", {"prompt": prompt, "scale": 1,
                                                        "seed": 1, "stars": 5,
                                                        "verdict": None})])
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["instance_prompt"] == 'T"RK: x' and front["widget"][0]["text"] == prompt
    assert front["base_model"] == "Wan-AI/Wan2.2-T2V-A14B"


def test_private_to_an_existing_public_repo_uploads_nothing(ws, conn, hub, checkpoint):
    """create_repo(private=True) does not change a public repo: the files would have gone out
    public while lorad recorded them private."""
    hub.add_repo("me/open")  # made public before
    commits = len(hub.repos["me/open"].commits)
    job_id = publish_job.enqueue(conn, "1", "me/open", private=True, name="open")
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.state == "failed" and job.attempts == 1
    assert "me/open already exists and is public" in job.error
    assert "nothing was uploaded" in job.error and "Settings on the Hub" in job.error
    assert not hub.repos["me/open"].private
    assert len(hub.repos["me/open"].commits) == commits  # nothing public went out
    assert hub.calls("GET", "/api/models/me/open")  # visibility read from the Hub
    assert loras.find(conn, "open") is None


def test_an_existing_private_repo_is_recorded_private(ws, conn, hub, checkpoint):
    hub.add_repo("me/secret", private=True)
    job_id = publish_job.enqueue(conn, "1", "me/secret", name="secret")  # asked public
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.state == "succeeded", job.error
    lora = loras.get(conn, "secret")
    assert lora.private and "fal probably cannot download it" in lora.warning
    assert job.result["private"] is True
    assert "me/secret already exists and is private" in job.result["notice"]
    assert "make it public" in job.result["notice"]


def test_a_new_repo_gets_what_was_asked_and_no_notice(ws, conn, hub, checkpoint):
    job_id = publish_job.enqueue(conn, "1", "me/fresh", private=True, name="fresh")
    run_jobs(ws)
    job = jobs.get(conn, job_id)
    assert job.result["private"] is True and "notice" not in job.result
    assert loras.get(conn, "fresh").private


def test_the_hub_reads_the_cards_task_library_and_base(ws, conn, hub, checkpoint):
    from huggingface_hub import HfApi

    publish_job.enqueue(conn, "1", "me/truck-lora", name="truck")
    run_jobs(ws)
    info = HfApi(endpoint=hub.url, token=hub.token).model_info("me/truck-lora")
    assert (info.pipeline_tag, info.library_name) == ("text-to-video", "diffusers")
    assert info.card_data.base_model == "Wan-AI/Wan2.2-T2V-A14B"
    assert info.card_data.instance_prompt == "TRK"
    readme = hub.repos["me/truck-lora"].files["README.md"].decode()
    code = readme.split("```py\n")[1].split("```")[0]
    compile(code, "README.md", "exec")
    assert 'from_pretrained("Wan-AI/Wan2.2-T2V-A14B-Diffusers"' in code
    assert ('pipe.load_lora_weights("me/truck-lora", '
            'weight_name="truck-diffusers.safetensors")') in code  # high-noise: `transformer`
    assert "load_into_transformer_2" not in code and "export_to_video" in code
    assert "- `truck-diffusers.safetensors`: " in readme and "load this one" in readme


def _card_front(text: str) -> dict:
    import yaml

    return yaml.safe_load(text.split("---\n")[1])


def test_model_card_task_library_and_weight_file(tmp_path):
    src = card.Source(tmp_path / "x.safetensors", base_model="Wan-AI/Wan2.2-I2V-A14B",
                      expert="low", tags=("wan",), trigger='say "``` hi`')
    text = card.model_card(src, "x", {"x.safetensors": "native"}, [],
                           weights="x.safetensors", repo="me/x")
    front = _card_front(text)
    assert (front["pipeline_tag"], front["library_name"]) == ("image-to-video", "diffusers")
    assert "image-to-video" in front["tags"]
    code = text.split("```py\n")[1].split("\n```")[0]
    compile(code, "README.md", "exec")  # a backtick in the prompt does not end the fence
    assert ('pipe.load_lora_weights("me/x", weight_name="x.safetensors", '
            "load_into_transformer_2=True)") in code  # low-noise expert: transformer_2
    assert "load_image(" in code and "image=image" in code

    both = card.model_card(card.Source(tmp_path / "y.safetensors", expert="both",
                                       tags=("wan",)), "y", {"y.safetensors": "it"}, [])
    assert both.count('weight_name="y.safetensors"') == 2
    assert _card_front(both)["pipeline_tag"] == "text-to-video"

    image = card.model_card(card.Source(tmp_path / "z.safetensors", media="image",
                                        base_model="Wan-AI/Wan2.1-T2V-14B", tags=("wan",)),
                            "z", {"z.safetensors": "it"}, [])
    assert _card_front(image)["pipeline_tag"] == "text-to-image"

    other = card.model_card(card.Source(tmp_path / "o.safetensors"), "o",
                            {"o.safetensors": "it"}, [])
    assert "library_name" not in _card_front(other) and "## Use it" not in other


def test_a_lora_in_the_services_key_format_goes_up_as_it_is(ws, conn, hub, checkpoint):
    """diffusion-pipe saves Wan LoRAs with ComfyUI keys (`diffusion_model.*.lora_A/B`, alpha =
    rank): the format the converted copy has. Converting it again failed ("not a musubi-tuner
    LoRA key"); it is published as it is, and it is the file services load."""
    from lorad.publish.loraconvert import in_inference_format, write

    path = ws.downloads_dir() / "truck-r1" / "epoch4-adapter_model.safetensors"
    write(path, {"diffusion_model.blocks.0.self_attn.q.lora_A.weight":
                 Tensor.from_float32("BF16", np.ones((4, 8), dtype=np.float32)),
                 "diffusion_model.blocks.0.self_attn.q.lora_B.weight":
                 Tensor.from_float32("BF16", np.ones((8, 4), dtype=np.float32))},
          {"format": "pt"})
    conn.execute("UPDATE checkpoints SET local_path = ?, name = ? WHERE id = 1",
                 (str(path), path.name))
    assert in_inference_format(path)
    publish_job.enqueue(conn, "1", "me/dp", name="dp")  # convert asked, as by default
    run_jobs(ws)
    files = hub.repos["me/dp"].files
    assert "dp.safetensors" in files and "dp-diffusers.safetensors" not in files
    assert loras.get(conn, "dp").url.endswith("/dp.safetensors")
    assert "the key format diffusers, ComfyUI and inference services load" in \
        files["README.md"].decode()
