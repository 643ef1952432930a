"""Shot chains against the fal double: shot lists, the 4n+1 frames rule, prices before anything
is sent, continuity frames taken exactly from the shot before, one joined video, retakes of the
downstream shots priced first, and every chain and shot with its manifest."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from helpers import go_to, run_jobs, wait_for
from media_factory import make_image

from lorad.cli import main
from lorad.generation import chains, endpoints, generations
from lorad.media import convert

I2V = "fal-ai/wan/v2.2-a14b/image-to-video/lora"


def rgb(path: Path, frame: str = "last") -> bytes:
    """One frame decoded to raw RGB: the first, or the last (every frame written over one)."""
    out = path.with_suffix(f".{frame}.rgb")
    pick = ["-frames:v", "1"] if frame == "first" else ["-f", "image2", "-update", "1",
                                                        "-c:v", "rawvideo"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), *pick, "-f" if frame ==
                    "first" else "-pix_fmt", "rawvideo" if frame == "first" else "rgb24",
                    *(["-pix_fmt", "rgb24"] if frame == "first" else []), str(out)], check=True)
    return out.read_bytes()


def shot_list(tmp_path: Path, shots: int = 4, **extra) -> Path:
    make_image(tmp_path / "start.png", size="160x288", source="color=c=orange")
    lines = [f'endpoint = "{I2V}"', 'lora = "truck-e8"', "scale = 0.8", "fps = 16",
             'resolution = "480p"', "seed = 100", "chain_last_frame = true",
             'image = "start.png"', 'negative_prompt = "blurry"',
             *(f"{k} = {json.dumps(v)}" for k, v in extra.items())]
    for n in range(shots):
        lines += ["", "[[shots]]", f'prompt = "TRK, the truck, part {n + 1}"', "duration = 1"]
    path = tmp_path / "ride.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(ws, capsys, *args) -> tuple[int, str, str]:
    code = main(["-w", str(ws.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("seconds,fps,expected", [
    (5, 24, (120, 121)),  # the seed's example: the nearest 4n+1 at or above
    (5, 16, (80, 81)), (1, 16, (16, 17)), (0.5, 16, (8, 17)),  # clamped up to the range
    (20, 16, (320, 161)),  # and down
])
def test_frames_follow_the_4n1_rule_within_the_endpoints_range(seconds, fps, expected):
    assert chains.frames_for(seconds, fps, endpoints.get(I2V)) == expected


def test_a_shot_list_with_mistakes_names_each(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f'endpoint = "{I2V}"\nimage = "missing.png"\nspeed = 2\n'
                    '[[shots]]\nprompt = ""\nduration = -1\n')
    with pytest.raises(chains.ChainError) as err:
        chains.parse(path)
    message = str(err.value)
    for part in ("unknown key 'speed'", "image: no such file", "shots[1]: prompt is required",
                 "shots[1]: duration must be seconds"):
        assert part in message


def test_the_plan_is_priced_and_nothing_is_sent_without_yes(ws, conn, fal, truck, tmp_path,
                                                            capsys):
    code, out, _ = cli(ws, capsys, "chain", "run", str(shot_list(tmp_path)))
    assert code == 0 and "add --yes to submit" in out
    assert "16->17" in out and "shot 1's last frame" in out and "initial image" in out
    total = sum(endpoints.get(I2V).price({"num_frames": 17, "frames_per_second": 16})
                for _ in range(4))
    assert f"about ${total:.2f} in all" in out
    assert chains.list_all(conn) == [] and generations.list_all(conn) == []
    assert fal.submits[I2V] == 0


def test_a_four_shot_chain_continues_each_shot_from_the_last_frame_of_the_one_before(
        ws, conn, fal, truck, tmp_path, capsys, notices):
    code, out, err = cli(ws, capsys, "chain", "run", str(shot_list(tmp_path)), "--yes")
    assert code == 0, err
    run_jobs(ws, timeout=180)
    chain = chains.get(conn, "ride")
    assert chain.status == "completed", chain.error
    shots = [generations.get(conn, g) for g in chain.shots]
    assert [g.status for g in shots] == ["completed"] * 4 and fal.submits[I2V] == 4
    assert len({g.seed for g in shots}) == 4  # seed 100 + shot index
    start = tmp_path / "start.png"
    assert shots[0].inputs["image_url"]["sha256"] == hashlib.sha256(start.read_bytes()).hexdigest()
    for before, after in zip(shots, shots[1:], strict=False):
        frame = Path(after.inputs["image_url"]["path"])
        assert frame.parent == Path(chain.folder) / "continuity"
        # the exact last frame of the shot before, pixel for pixel, and that file was sent
        assert rgb(frame, "first") == rgb(Path(before.output_path))
        assert after.inputs["image_url"]["sha256"] == hashlib.sha256(frame.read_bytes()).hexdigest()
    joined = convert.probe(Path(chain.output_path))
    made = [convert.probe(Path(g.output_path)).frames for g in shots]
    assert joined.frames == sum(made) == 4 * 33  # 17 asked; fal interpolates one between each
    assert chain.manifest["output"]["frames"] == sum(made)
    assert [s["target_frames"] for s in chain.manifest["shots"]] == [16] * 4
    assert [s["num_frames"] for s in chain.manifest["shots"]] == [17] * 4
    assert json.loads((Path(chain.folder) / "manifest.json").read_text()) == chain.manifest
    manifest = shots[1].manifest  # every shot has its own, beside its output too
    assert manifest["tools"]["ffmpeg"] and manifest["tools"]["lorad"]
    assert manifest["params_effective"]["interpolator_model"] == "film"
    assert manifest["frames"] == {"asked": 17, "expected": 33, "made": 33, "fps_expected": 32,
                                  "fps_made": 32.0, "interpolation": manifest["frames"][
                                      "interpolation"]}
    assert manifest["checks"]["thresholds"]["min_frame_diff"] == 0.003
    assert manifest["chain"] == {"chain_id": chain.id, "shot": 2}
    assert json.loads(Path(shots[1].output_path).with_suffix(".json").read_text()) == manifest
    code, out, _ = cli(ws, capsys, "chain", "show", "ride")
    assert code == 0 and "completed" in out and f"video: {chain.output_path}" in out
    wait_for(lambda: notices.titles(), message="the chain's notice")
    assert notices.titles() == ["lorad: chain ride done"]


def test_a_failed_shot_stops_the_chain_and_a_retake_prices_the_downstream_shots_first(
        ws, conn, fal, truck, tmp_path, capsys):
    fal.plan_next()
    fal.plan_next(error="runner crashed")  # shot 2 fails on fal
    cli(ws, capsys, "chain", "run", str(shot_list(tmp_path)), "--yes")
    run_jobs(ws, timeout=180)
    chain = chains.get(conn, "ride")
    assert chain.status == "failed" and "shot 2 failed" in chain.error
    assert "`lorad chain retake ride 2`" in chain.error
    assert fal.submits[I2V] == 2  # shots 3 and 4 were never sent
    first = chain.shots[0]
    failed_seed = generations.get(conn, chain.shots[1]).seed

    code, out, _ = cli(ws, capsys, "chain", "retake", "ride", "2")
    assert code == 0 and "and the 2 shot(s) after it" in out and "add --yes" in out
    assert fal.submits[I2V] == 2  # shown, not sent
    cli(ws, capsys, "chain", "retake", "ride", "2", "--yes")
    run_jobs(ws, timeout=180)
    chain = chains.get(conn, "ride")
    assert chain.status == "completed", chain.error
    assert chain.shots[0] == first  # kept: not paid again
    assert fal.submits[I2V] == 5
    assert generations.get(conn, chain.shots[1]).seed != failed_seed  # a retake, a new seed
    assert len([g for g in generations.list_all(conn) if g.chain_id == chain.id]) == 5


async def test_the_generations_screen_shows_a_chain_as_a_row_of_shots(ws, conn, fal, truck,
                                                                      tmp_path, capsys):
    import asyncio

    from helpers import dump, widget_lines
    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.chain_row import ChainRowScreen
    from tui.screens.generations import GenerationsScreen
    from tui.widgets.rowlist import RowList

    cli(ws, capsys, "chain", "run", str(shot_list(tmp_path, shots=3)), "--yes")
    await asyncio.to_thread(run_jobs, ws, 180)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        table = (await go_to(app, pilot, "Generations", GenerationsScreen, rows=3)
                 ).query_one(RowList)
        assert "ride#1" in str(table.rows)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ChainRowScreen), message="the row")
        labels = [str(s.render()) for s in app.screen.query("Static")]
        assert any("chain ride" in t for t in labels)
        assert [t.split("  ")[0] for t in labels if t.startswith("shot ")] == \
            ["shot 1", "shot 2", "shot 3"]
        # in sight at 80x24: the chain's name and every shot's label, side by side in a row
        body = app.screen.query_one("#grid-body")
        await until(pilot, lambda: "chain ride" in " ".join(widget_lines(app, body)),
                    message=lambda: f"the title\n{dump(app)}")
        row = next((line for line in widget_lines(app, body) if "shot 1" in line), "")
        assert [w for w in row.split() if w.startswith("#")] == \
            [f"#{g}" for g in chains.get(conn, "ride").shots], dump(app)


async def test_r_on_a_chain_shot_prices_it_and_the_shots_after_it_before_running_them(
        ws, conn, fal, truck, tmp_path, capsys):
    import asyncio

    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.generations import GenerationsScreen
    from tui.widgets.rowlist import RowList

    cli(ws, capsys, "chain", "run", str(shot_list(tmp_path, shots=3)), "--yes")
    await asyncio.to_thread(run_jobs, ws, 180)
    chain = chains.get(conn, "ride")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        table = (await go_to(app, pilot, "Generations", GenerationsScreen, rows=3)
                 ).query_one(RowList)
        table.set_cursor(next(i for i, r in enumerate(table.rows) if int(r[1]) ==
                              chain.shots[1]))
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the price")
        question = str(app.screen.query("Static").first().render())
        assert "shot 2 again" in question and "the 1 shot(s) after it" in question
        assert fal.submits[I2V] == 3  # nothing sent before the answer
        await pilot.press("y")
        await until(pilot, lambda: chains.get(conn, "ride").status == "queued",
                    message="the chain queued again")
    await asyncio.to_thread(run_jobs, ws, 180)
    chain = chains.get(conn, "ride")
    assert chain.status == "completed" and fal.submits[I2V] == 5
