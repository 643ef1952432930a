"""Generations without the service: parameters by endpoint data, retakes, sweeps and budgets."""

from __future__ import annotations

import pytest

from lorad.core import jobs
from lorad.generation import endpoints, generations, loras

WAN22 = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


@pytest.fixture
def lora(conn):
    return loras.add(conn, "truck-v1", "https://hf.example/owner/truck/resolve/main/t.safetensors",
                     trigger="TRK", base_model="wan2.2-t2v-a14b", expert="high")


def test_wan22_loras_send_the_transformer_explicitly(conn, lora):
    gen_id = generations.create(conn, WAN22, "TRK, a truck", lora="truck-v1", scale=0.8, seed=7,
                                extra={"aspect_ratio": "9:16", "num_frames": 81})
    g = generations.get(conn, gen_id)
    assert g.params["loras"] == [{"path": lora.url, "scale": 0.8, "transformer": "high"}]
    assert g.status == "queued" and jobs.get(conn, g.job_id).kind == "gen.run"
    assert g.cost == pytest.approx(0.1 * 81 / 16)


@pytest.mark.parametrize("extra,problem", [
    ({"num_frames": 5}, "num_frames must be 17-161"),
    ({"resolution": "1080p"}, "resolution must be one of"),
    ({"guide_scale": 5}, "unknown parameter 'guide_scale'"),
])
def test_parameters_are_checked_against_the_endpoint(conn, lora, extra, problem):
    with pytest.raises(generations.GenerationError, match=problem):
        generations.create(conn, WAN22, "TRK", lora="truck-v1", seed=1, extra=extra)


def test_retake_keeps_parameters_with_a_new_seed_and_links_the_original(conn, lora):
    first = generations.create(conn, WAN22, "TRK, a truck", lora="truck-v1", scale=0.8, seed=7)
    again = generations.retake(conn, first, scale=0.6)
    a, b = generations.get(conn, first), generations.get(conn, again)
    assert b.parent_id == a.id and b.seed != a.seed and b.prompt == a.prompt
    assert b.params["loras"][0]["scale"] == 0.6 and b.params["loras"][0]["transformer"] == "high"


def test_sweep_is_priced_before_submitting_and_refused_over_budget(conn, lora):
    loras.add(conn, "truck-v2", "https://hf.example/t2.safetensors", expert="both")
    plan = generations.plan_sweep(conn, WAN22, lora_names=["truck-v1", "truck-v2"],
                                  scales=[0.6, 0.8, 1.0], prompts=["TRK, a", "TRK, b"],
                                  seeds=[1, 2])
    assert len(plan.cells) == 24 and plan.cost == pytest.approx(24 * 0.1 * 81 / 16)
    assert jobs.counts_by_state(conn)["queued"] == 0  # nothing submitted by planning
    with pytest.raises(generations.GenerationError, match="over the \\$5.00 budget"):
        generations.submit_sweep(conn, plan, budget=5.0)
    assert jobs.counts_by_state(conn)["queued"] == 0
    ids = generations.submit_sweep(conn, plan, budget=20.0)
    assert len(ids) == 24 and {g.sweep_id for g in generations.list_all(conn)} == {plan.sweep_id}
    assert {g.seed for g in generations.list_all(conn)} == {1, 2}  # fixed seeds: comparable cells


def test_every_endpoint_has_a_price():
    for endpoint in endpoints.ENDPOINTS.values():
        if endpoint.service == "trainer":  # what a trainer made by itself: never sent, free
            assert endpoint.price({}) == 0
            continue
        assert endpoint.price({"num_frames": 81, "frames_per_second": 16}) > 0


def test_dataset_card_gives_negative_prompt_and_eval_prompts(ws, conn, lora, capsys):
    from lorad import cli
    from lorad.media import datasets

    conn.execute("INSERT INTO datasets (name, profile, trigger, created_at) VALUES"
                 " ('truck', 'wan22-14b-720p', 'TRK', 0)")
    assert cli.main(["-w", str(ws.root), "dataset", "rules", "truck", "--negative-prompt",
                     "spinning wheels, morphing", "--eval-prompt", "TRK, parked A",
                     "--eval-prompt", "TRK, parked B", "--checklist", "spinning tires"]) == 0
    assert datasets.get(conn, "truck").settings["checklist"] == ["spinning tires"]
    plan = generations.plan_sweep(conn, WAN22, lora_names=["truck-v1"], scales=[0.8],
                                  prompts=[], seeds=[1], dataset="truck")
    ids = generations.submit_sweep(conn, plan, budget=None)
    made = [generations.get(conn, i) for i in ids]
    assert [g.prompt for g in made] == ["TRK, parked A", "TRK, parked B"]
    assert {g.params["negative_prompt"] for g in made} == {"spinning wheels, morphing"}
    assert {g.dataset_id for g in made} == {datasets.get(conn, "truck").id}
    own = generations.create(conn, WAN22, "TRK", lora="truck-v1", seed=2, dataset="truck",
                             extra={"negative_prompt": "blur"})
    assert generations.get(conn, own).params["negative_prompt"] == "blur"
    assert generations.get(conn, generations.retake(conn, own)).dataset_id == made[0].dataset_id
    capsys.readouterr()
    assert cli.main(["-w", str(ws.root), "gen", "--dataset", "truck", "--lora", "truck-v1",
                     "--seed", "5"]) == 0
    assert "2 generation(s) queued" in capsys.readouterr().out


def test_prompt_template_from_the_reference_card():
    template = ("TRUCKUGC, [color] [year?] [make] [model] parked [setting], phone camera "
                "quality, static shot, UGC style")
    assert generations.fill_template(template, {
        "color": "faded black", "make": "Chevy", "model": "Silverado 1500",
        "setting": "on gravel"}) == ("TRUCKUGC, faded black Chevy Silverado 1500 parked on "
                                     "gravel, phone camera quality, static shot, UGC style")
    with pytest.raises(generations.GenerationError, match='--fill "model=..."'):
        generations.fill_template(template, {"color": "red", "make": "Ford", "setting": "x"})
    with pytest.raises(generations.GenerationError, match="no slot colour"):
        generations.fill_template(template, {"colour": "red", "color": "r", "make": "F",
                                             "model": "m", "setting": "s"})


def test_gen_fill_uses_the_dataset_template_with_its_trigger(ws, conn, lora, capsys):
    from lorad import cli

    conn.execute("INSERT INTO datasets (name, profile, trigger, settings, created_at) VALUES"
                 " ('truck', 'wan22-14b-720p', 'TRK', ?, 0)",
                 ('{"caption_rules": {"template": "[color] pickup parked [setting]"}}',))
    assert cli.main(["-w", str(ws.root), "gen", "--dataset", "truck", "--lora", "truck-v1",
                     "--fill", "color=dark green", "--fill", "setting=in a field",
                     "--seed", "1"]) == 0
    assert generations.list_all(conn)[-1].prompt == "TRK, dark green pickup parked in a field"


def test_generating_with_a_private_lora_warns(ws, conn, lora, capsys):
    from lorad import cli

    conn.execute("UPDATE loras SET private = 1, repo = 'me/truck' WHERE name = 'truck-v1'")
    assert cli.main(["-w", str(ws.root), "gen", "TRK", "--lora", "truck-v1", "--seed", "1"]) == 0
    assert "private Hub repo (me/truck); fal probably cannot download it" in \
        capsys.readouterr().err


@pytest.mark.parametrize("name", ["prompt", "seed", "loras"])
def test_a_param_naming_a_core_field_is_refused(ws, conn, capsys, name):
    """`--param prompt=...` used to replace what was sent while the store kept the old prompt."""
    from lorad.cli import main

    loras.add(conn, "truck-v1", "https://hf.example/t.safetensors", expert="high")
    code = main(["-w", str(ws.root), "gen", "TRK, a truck", "--lora", "truck-v1", "--seed", "1",
                 "--param", f"{name}=7"])
    assert code == 1 and f"--param {name}: " in capsys.readouterr().err
    assert generations.list_all(conn) == []


@pytest.mark.parametrize("name", ["../x", "a\nb", "x" * 200, "", ".hidden"])
def test_a_lora_name_must_be_a_name(conn, name):
    """Names like ../x, a newline or 200 characters were taken and broke the tables."""
    with pytest.raises(loras.LoraError, match="letters, digits"):
        loras.add(conn, name, "https://hf.example/t.safetensors")


@pytest.fixture
def start_image(tmp_path):
    from fal_double import media

    path = tmp_path / "start.png"
    path.write_bytes(media()["image"])
    return path


def test_sweeps_and_budgets_follow_fal_billing(conn, start_image):
    """flux-lora used to cost $0.035 a request whatever its size and image count, and Wan 2.1
    image-to-video $0.75 whatever its resolution and length."""
    loras.add(conn, "style", "https://hf.example/style.safetensors", base_model="flux-dev")
    flux = generations.plan_sweep(conn, "fal-ai/flux-lora", lora_names=["style"],
                                  scales=[0.8, 1.0], prompts=["a style"], seeds=[1],
                                  extra={"image_size": "square_hd", "num_images": 2})
    assert flux.cost == pytest.approx(2 * 2 * 0.035 * 1024 * 1024 / 1e6, abs=1e-5)
    loras.add(conn, "wan21", "https://hf.example/wan21.safetensors")
    i2v = generations.plan_sweep(conn, "fal-ai/wan-i2v-lora", lora_names=["wan21"],
                                 scales=[1.0], prompts=["TRK"], seeds=[1, 2],
                                 extra={"resolution": "480p", "num_frames": 90},
                                 files={"image_url": start_image})
    assert i2v.cost == pytest.approx(2 * 0.75 * 0.5 * 1.25)
    with pytest.raises(generations.GenerationError, match="about \\$0.94 .* over the \\$0.90"):
        generations.submit_sweep(conn, i2v, budget=0.9)
    assert len(generations.submit_sweep(conn, i2v, budget=1.0)) == 2
    assert [g.cost for g in generations.list_all(conn)] == [pytest.approx(0.75 * 0.5 * 1.25)] * 2


def test_gen_and_sweep_say_when_a_price_is_unverified(ws, conn, capsys, start_image):
    from lorad import cli

    i2v = ["--endpoint", "fal-ai/wan-i2v-lora", "--image", str(start_image),
           "--param", "resolution=480p"]
    assert cli.main(["-w", str(ws.root), "gen", "TRK", "--seed", "1", *i2v]) == 0
    out = capsys.readouterr().out
    assert "1 generation(s) queued" in out and "about $0.38" in out
    assert "the price is unverified" in out and "https://fal.ai/models/fal-ai/wan-i2v-lora" in out
    loras.add(conn, "wan21", "https://hf.example/wan21.safetensors")
    assert cli.main(["-w", str(ws.root), "sweep", "--lora", "wan21", "--scale", "1",
                     "--prompt", "TRK", "--seed", "1", "--seed", "2", *i2v]) == 0
    out = capsys.readouterr().out
    assert "about $0.75" in out and "the price is unverified" in out
    assert cli.main(["-w", str(ws.root), "gen", "a cat", "--seed", "1", "--endpoint",
                     "fal-ai/flux-lora", "--param", 'image_size={"width": 1000, "height": 1000}',
                     "--param", "acceleration=regular"]) == 0
    out = capsys.readouterr().out
    assert "about $0.04" in out and "unverified" not in out
