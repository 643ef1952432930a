"""Caption drafts from a captioner on the user's own pod ([captioners.NAME]: a Qwen2.5-VL-style
script, tests/support/captioner_double) through the pod service on the real sshd pod: priced
first, one request per clip, shaped and written as drafts, the pod time booked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_jobs
from sshd import start_sshd
from test_drafts import clip_dataset

from lorad.captions import versions
from lorad.cli import main
from lorad.generation import generations
from lorad.training import pods

DOUBLE = Path(__file__).parent / "support" / "captioner_double"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        shutil.copytree(DOUBLE, srv.root / "captioner", ignore=shutil.ignore_patterns(
            "__pycache__"))
        yield srv


def declare(ws, server, tmp_path, extra: str = "") -> Path:
    log = tmp_path / "captioner.log"
    ws.config_path.write_text(ws.config_path.read_text() + f'''
[captioners.qwen-vl]
title = "Qwen2.5-VL 7B on my pod"
workdir = "{server.root / 'captioner'}"
reads = "video"
command = "python caption_video.py --video {{clip}} --prompt {{prompt}} --out {{out}}/caption.txt"
output = "caption.txt"
seconds_estimate = 36
env = {{ CAPTIONER_DOUBLE_LOG = "{log}" }}
{extra}''')
    ws.config()
    return log


@pytest.fixture
def pod(conn, server):
    return pods.add(conn, "box", host=server.host, port=server.port, user=server.user,
                    key_file=str(server.key_file), remote_dir=str(server.root / "lorad"),
                    cost_per_hour=1.0)


def test_clips_are_drafted_by_a_captioner_on_the_pod(ws, conn, server, pod, tmp_path, capsys):
    log = declare(ws, server, tmp_path)
    clip_dataset(conn, tmp_path)
    versions.set_caption(conn, 1, "TRUCKUGC, a red truck, my own words")
    w = ["-w", str(ws.root)]
    assert main([*w, "captions", "draft", "truck", "--service", "pod", "--model", "qwen-vl",
                 "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["clips"], plan["endpoint"], plan["sent"]) == (2, "pod/caption/qwen-vl", False)
    assert plan["cost"] == pytest.approx(2 * 36 / 3600)  # the declared seconds at $1/h
    assert not log.exists()  # priced, nothing ran
    assert main([*w, "captions", "draft", "truck", "--service", "pod", "--model", "qwen-vl",
                 "--yes"]) == 0
    run_jobs(ws, timeout=120)
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(ran) == 2  # one run per clip
    assert all("trigger word TRUCKUGC" in r["prompt"] for r in ran)  # the rules went along
    assert all("TRUCKUGC, a red truck, my own words" in r["prompt"] for r in ran)  # the style
    assert versions.current(conn, 1).text == "TRUCKUGC, a red truck, my own words"
    for clip_id in (2, 3):
        v = versions.current(conn, clip_id)
        assert v.source == "draft:qwen-vl" and v.is_draft
        assert v.text.startswith("TRUCKUGC, ") and "The video shows" not in v.text
        assert "64x112 shot" in v.text  # what the script saw in this clip (a tiny mp4)
    drafts = generations.list_all(conn, drafts=True)
    assert [g.status for g in drafts] == ["completed", "completed"]
    booked = conn.execute("SELECT COUNT(*), SUM(amount) FROM cost_entries WHERE kind = "
                          "'caption_draft'").fetchone()
    assert booked[0] == 2 and booked[1] == pytest.approx(sum(g.cost for g in drafts))
    assert pods.get(conn, "box").holds == {}


def test_a_captioner_that_dies_says_why_and_writes_no_draft(ws, conn, server, pod, tmp_path):
    declare(ws, server, tmp_path).unlink(missing_ok=True)
    ws.config_path.write_text(ws.config_path.read_text().replace(
        'env = { CAPTIONER_DOUBLE_LOG', 'env = { CAPTIONER_DOUBLE_FAIL = "oom", '
                                        'CAPTIONER_DOUBLE_LOG'))
    ws.config()
    clip_dataset(conn, tmp_path, n=1)
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--service", "pod",
                 "--model", "qwen-vl", "--yes"]) == 0
    run_jobs(ws, timeout=120)
    g = generations.list_all(conn, drafts=True)[0]
    assert g.status == "failed" and "CUDA out of memory" in g.error
    assert versions.current(conn, 1) is None
    assert pods.get(conn, "box").holds == {}  # a failed command holds the pod no longer


def test_pod_drafting_refuses_what_it_cannot_do(ws, conn, server, pod, tmp_path, capsys):
    clip_dataset(conn, tmp_path)
    w = ["-w", str(ws.root)]
    assert main([*w, "captions", "draft", "truck", "--service", "pod"]) == 1
    assert "name it with --model NAME" in capsys.readouterr().err
    assert main([*w, "captions", "draft", "truck", "--service", "pod", "--model", "nope"]) == 1
    assert "declare [captioners.nope] in lorad.toml" in capsys.readouterr().err
    declare(ws, server, tmp_path, extra='gpu_memory_gb = 80\n')
    pods.update(conn, pod.id, setup={"gpus": [{"name": "NVIDIA GeForce RTX 4090",
                                               "total_mib": 24564, "free_mib": 24000}]})
    assert main([*w, "captions", "draft", "truck", "--service", "pod", "--model",
                 "qwen-vl"]) == 1
    assert "needs 80 GB of free GPU memory" in capsys.readouterr().err
    ws.config_path.write_text(ws.config_path.read_text().replace("{{out}}", "{{outt}}")
                              .replace("{out}", "{outt}"))
    assert main([*w, "captions", "draft", "truck", "--service", "pod", "--model",
                 "qwen-vl"]) == 1
    said = capsys.readouterr().err
    line = next(n for n, row in enumerate(ws.config_path.read_text().splitlines(), 1)
                if row.startswith("command = "))
    assert f"lorad.toml:{line}: captioners.qwen-vl.command: unknown placeholder {{outt}}" in said


def test_tracks_get_tag_prompts_from_an_audio_model_on_the_pod(ws, conn, server, pod, tmp_path):
    """Audio datasets draft tag prompts the same way (ACE-Step's fixed tagging prompt)."""
    from test_audio_ingest import add, track

    from lorad.generation.drafting import AUDIO_PROMPT
    from lorad.media import clips, datasets

    log = tmp_path / "tagger.log"
    ws.config_path.write_text(ws.config_path.read_text() + f'''
[captioners.omni]
title = "an audio-language model on my pod"
workdir = "{server.root / 'captioner'}"
reads = "audio"
command = "python tag_audio.py --audio {{clip}} --prompt {{prompt}} --out {{out}}/tags.txt"
output = "tags.txt"
seconds_estimate = 10
env = {{ CAPTIONER_DOUBLE_LOG = "{log}" }}
''')
    ws.config()
    w = ["-w", str(ws.root)]
    assert main([*w, "dataset", "create", "lofi", "--profile", "ace-step-audio"]) == 0
    d = datasets.get(conn, "lofi")
    found = add(ws, conn, d, [track(tmp_path / "song.wav", 31)])
    clip = next(iter(found.values()))
    assert main([*w, "captions", "draft", "lofi"]) == 1  # no hosted model for music
    assert main([*w, "captions", "draft", "lofi", "--service", "pod", "--model", "omni",
                 "--yes"]) == 0
    run_jobs(ws, timeout=120)
    v = versions.current(conn, clip.id)
    assert v.source == "draft:omni"
    assert v.text == "Lofi hip hop, mellow, rhodes piano, 91 bpm, vinyl crackle, rainy, " \
                     "instrumental"  # "The track is" gone
    sent = json.loads(log.read_text().splitlines()[0])
    assert sent["prompt"].startswith(AUDIO_PROMPT)
    assert clips.get(conn, clip.id).media_path.endswith(".mp3")
