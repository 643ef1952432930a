"""Pilot tests of the smaller items of "the TUI a person can live in over SSH" (issue 15): the
checkpoint list, the loss chart's axis and legend, what a pod cost, the filmstrip's aspect, the
cursor on a lint problem and the reject verdict. Each runs at 80x24 and 120x36."""

from __future__ import annotations

import re
import time

import pytest
from helpers import SIZE_IDS, widget_lines
from helpers import SIZES as ALL_SIZES
from helpers import pilot_until as until
from PIL import Image

from lorad.core import ledger
from lorad.generation import ratings
from lorad.training import pods, runs
from tui.app import LoradApp
from tui.screens.help import binding_rows
from tui.screens.pods import PodsScreen
from tui.screens.training import TrainingScreen

SIZES = pytest.mark.parametrize("size", ALL_SIZES, ids=SIZE_IDS)
CFG = {"dit": "/m/dit", "vae": "/m/vae", "t5": "/m/t5"}


def make_run(conn, *, points: int = 0, state: str = "stopped", cost_per_hour: float = 0.69):
    """A pod and an hour-long run on it (ended, so its cost stands still), with `points` loss
    points."""
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=cost_per_hour)
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('d', 'p', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', '{}', 0)")
    r = runs.create(conn, "truck", 1, pod.id, CFG)
    now = time.time()
    runs.update(conn, r.id, state=state, stage="train", step=points, total_steps=points or None,
                avr_loss=0.08, started_at=now - 3600, ended_at=now)
    with conn:
        conn.executemany("INSERT INTO loss_points (run_id, step, avr_loss, at) VALUES (?,?,?,?)",
                         [(r.id, s, 1.0 / (1 + s / 100), now) for s in range(1, points + 1)])
    return pod, runs.get_by_id(conn, r.id)


def add_checkpoint(conn, run_id: int, step: int) -> int:
    return conn.execute(
        "INSERT INTO checkpoints (run_id, remote_path, name, step, state, created_at)"
        " VALUES (?, ?, ?, ?, 'remote', 0)",
        (run_id, f"/o/truck-{step:06d}.safetensors", f"truck-{step:06d}.safetensors", step)
    ).lastrowid


def add_generation(conn, checkpoint_id: int, status: str = "completed") -> int:
    return conn.execute(
        "INSERT INTO generations (checkpoint_id, endpoint, status, created_at, updated_at)"
        " VALUES (?, 'fal-ai/wan-t2v-lora', ?, 0, 0)", (checkpoint_id, status)).lastrowid


async def open_training(app, pilot, checkpoints: int | None = None):
    await pilot.press("3")
    await until(pilot, lambda: isinstance(app.screen, TrainingScreen), message="training")
    screen = app.screen
    await until(pilot, lambda: screen.data is not None and screen.data.detail is not None
                and (checkpoints is None or len(screen.data.detail.checkpoints) == checkpoints),
                message="run detail")
    return screen


# -- 1. the checkpoint list scrolls and sorts by rank -------------------------------------------

@SIZES
async def test_forty_checkpoints_scroll_to_the_last_and_sort_best_rated_first(ws, conn, size):
    """Only the last eight checkpoints were shown, in a box that did not scroll, and in the
    order saved only."""
    _pod, run = make_run(conn)
    ids = {step: add_checkpoint(conn, run.id, step) for step in range(24, 961, 24)}
    for _ in range(3):  # the best: 3 of 3 approved
        ratings.rate(conn, add_generation(conn, ids[408]), verdict="approve")
    ratings.rate(conn, add_generation(conn, ids[720]), stars=5)  # next: 1 of 2
    ratings.rate(conn, add_generation(conn, ids[720]), stars=2)
    # failed generations say nothing of the LoRA: 10 approved failures must not lift 120
    for _ in range(10):
        ratings.rate(conn, add_generation(conn, ids[120], "failed"), verdict="approve")
    ratings.rate(conn, add_generation(conn, ids[120]), stars=1)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await open_training(app, pilot, checkpoints=40)
        box = screen.query_one("#training-checkpoints-box")

        def shown() -> list[str]:
            return re.findall(r"truck-(\d{6})", "\n".join(widget_lines(app, box)))

        await until(pilot, lambda: shown()[:1] == ["000024"], message="the first checkpoint")
        assert "000960" not in shown()  # more than fit
        title = str(screen.query_one("#training-checkpoints-title").render())
        assert "40 by step" in title
        keys = {row[2]: row[0] for row in binding_rows(screen)}  # help lists them
        assert (keys["focus_checkpoints"], keys["sort_checkpoints"]) == ("c", "o")
        await pilot.press("c", "G")  # to the list, then its end
        await until(pilot, lambda: shown()[-1:] == ["000960"], message="the last, scrolled to")
        assert box.has_focus and "000024" not in shown()
        assert "G" in {row[2]: row[0] for row in binding_rows(screen)}["scroll_end"]
        await pilot.press("k")  # and back a line
        await until(pilot, lambda: "000960" not in shown(), message="scrolled up a line")
        await pilot.press("o")  # by rank: best first, unrated after in the order saved
        await until(pilot, lambda: shown()[:3] == ["000408", "000720", "000120"],
                    message=f"best rated first, shown {shown()}")
        assert "40 by rank" in str(screen.query_one("#training-checkpoints-title").render())
        await pilot.press("o")
        await until(pilot, lambda: shown()[:1] == ["000024"], message="by step again")
        await pilot.press("c", "down")  # back to the runs list: keys move runs again
        assert screen.query_one("#training-table").has_focus


# -- 3. the loss chart: whole steps on the x axis, the legend off the y labels -----------------

@SIZES
@pytest.mark.parametrize("points", [37, 960])
async def test_the_loss_chart_ticks_whole_steps_and_keeps_its_legend_off_the_y_labels(
        ws, conn, size, points):
    """The x ticks read 242.6, 480.2; the legend was drawn inside the plot beside (and at
    narrow widths over) the y-axis labels."""
    make_run(conn, points=points)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await open_training(app, pilot)
        chart = screen.query_one("#training-chart")
        legend = screen.query_one("#training-legend")

        def axis() -> list[str]:
            lines = widget_lines(app, chart)
            return lines[-1].split() if lines else []

        await until(pilot, lambda: len(axis()) >= 2, message="x ticks")
        ticks = axis()
        assert all(re.fullmatch(r"\d+", t) for t in ticks), ticks
        values = [int(t) for t in ticks]
        assert values == sorted(values) and 1 <= values[0] and values[-1] <= points
        assert len({b - a for a, b in zip(values, values[1:], strict=False)}) <= 1  # even
        shown_legend = " ".join(widget_lines(app, legend))
        assert f"avr_loss ({points} steps)" in shown_legend
        assert "min/max" in shown_legend and "smoothed" in shown_legend
        plot = widget_lines(app, chart)
        y_labelled = [line for line in plot if "┤" in line]
        assert y_labelled, plot
        for line in y_labelled:  # each y label whole, and nothing of the legend in the plot
            assert re.match(r"\s*\d+(\.\d+)?┤", line), line
        assert not any(word in line for line in plot for word in ("smoothed", "raw", "min/"))
        await pilot.press("s")  # smoothing off: the legend says so
        await until(pilot, lambda: "smoothed" not in " ".join(widget_lines(app, legend)),
                    message="legend without the smoothed curve")


# -- 4. what a pod cost: one rule, the same on the Pods and Training screens -----------------

@SIZES
async def test_a_pod_with_booked_cost_shows_the_same_spend_on_pods_and_training(ws, conn,
                                                                              size):
    """The Pods screen said $0.00 spent (it read only what the ledger had booked, and time is
    booked when lorad stops a pod) while the Training screen showed the run's cost."""
    pod, run = make_run(conn, cost_per_hour=0.69)
    ledger.book(conn, ledger.POD_TIME, 2.0, "an earlier start", pod_id=pod.id)
    expected = runs.pod_cost(conn, pod).total
    assert expected == pytest.approx(2.69, abs=0.01)  # booked, and the run's hour at $0.69/h
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await open_training(app, pilot)
        figures = screen.query_one("#training-figures")
        spent = re.compile(r"spent\s+\$(\d+\.\d\d)")  # the line may wrap anywhere
        await until(pilot, lambda: spent.search(" ".join(widget_lines(app, figures))),
                    message="pod spend on Training")
        on_training = spent.search(" ".join(widget_lines(app, figures)))
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, PodsScreen), message="pods")
        detail = app.screen.query_one("#pods-detail")
        so_far = re.compile(r"spent\s+so\s+far\s+\$(\d+\.\d\d)")
        await until(pilot, lambda: so_far.search(" ".join(widget_lines(app, detail))),
                    message="pod spend on Pods")
        on_pods = so_far.search(" ".join(widget_lines(app, detail)))
    assert on_training.group(1) == on_pods.group(1) == f"{expected:.2f}"


def test_a_pod_lorad_powers_costs_its_booked_time_and_the_time_since(conn):
    """A RunPod pod is billed while it is up, runs or not: booked at its last stop, plus the
    time since its start; a plain SSH host costs its runs' time."""
    now = time.time()
    pod = pods.add(conn, "rp", provider="runpod", provider_id="rp1", cost_per_hour=2.0)
    ledger.book(conn, ledger.POD_TIME, 1.5, "last week", pod_id=pod.id, at=now - 86400)
    pods.update(conn, pod.id, started_at=now - 1800)
    cost = runs.pod_cost(conn, pods.get(conn, "rp"), now)
    assert (cost.booked, cost.accruing) == (1.5, pytest.approx(1.0))
    pods.book_time(conn, pods.get(conn, "rp"), now)  # what stopping it books
    after = runs.pod_cost(conn, pods.get(conn, "rp"), now)
    assert after.total == pytest.approx(2.5) and after.accruing == 0
    pods.update(conn, pod.id, started_at=None, state="stopped")
    assert pods.book_time(conn, pods.get(conn, "rp"), now + 3600) == 0  # stopped: not billed


# -- 2. `n` then enter: the editor's cursor on the lint problem --------------------------------

@SIZES
async def test_n_then_enter_puts_the_editor_cursor_on_the_problem(ws, conn, size):
    """`n` reached a clip with a banned word, but the editor opened with its cursor at the end
    of the caption, wherever the word was."""
    from test_captions import add_clip

    from lorad.captions import versions
    from lorad.media import datasets
    from tui.screens.captions import CaptionEditor, CaptionsScreen

    ds = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")
    datasets.update_settings(conn, ds.id, caption_rules={"banned_words": ["cinematic"]})
    clean = add_clip(conn, ds.id, "a", state="ready")
    banned = add_clip(conn, ds.id, "b", state="ready")
    versions.set_caption(conn, clean, "TRUCKUGC, a white truck by a fence at noon, static")
    caption = ("TRUCKUGC, a red pickup truck parked on gravel beside a barn, cinematic light "
               "on the hood, slow push in")
    versions.set_caption(conn, banned, caption)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, CaptionsScreen), message="captions")
        screen = app.screen
        editor = screen.query_one(CaptionEditor)
        await until(pilot, lambda: len(screen.by_id) == 2, message="rows")
        await pilot.press("n")
        await until(pilot, lambda: screen.current_row() is not None
                    and screen.current_row().id == banned, message="the warning")
        await until(pilot, lambda: editor.text == caption, message="its caption")
        await pilot.press("enter")
        await until(pilot, lambda: editor.has_focus, message="editing")
        at = caption.index("cinematic")
        cursor = editor.document.get_index_from_location(editor.cursor_location)
        assert at <= cursor <= at + len("cinematic")
        assert editor.selected_text == "cinematic"  # selected: typing replaces it
        await pilot.press(*"soft")
        assert "parked on gravel beside a barn, soft light on the hood" in editor.text
        await pilot.press("escape")
        await until(pilot, lambda: "soft light" in versions.current(conn, banned).text,
                    message="saved")
        # a missing trigger: the cursor goes where it belongs, the start
        versions.set_caption(conn, clean, "a white truck by a fence at noon, static shot")
        await until(pilot, lambda: screen.by_id[clean].has_error, message="the error shown")
        await pilot.press("n")
        await until(pilot, lambda: screen.current_row().id == clean, message="the error")
        await pilot.press("enter")
        await until(pilot, lambda: editor.has_focus, message="editing")
        assert editor.cursor_location == (0, 0) and editor.selected_text == ""
        await pilot.press("escape", "j", "enter")  # not reached by n: the end, as before
        await until(pilot, lambda: editor.has_focus and screen.editing_id == banned,
                    message="editing the other")
        assert editor.cursor_location == editor.document.end


# -- 5. the filmstrip keeps a portrait clip's aspect --------------------------------------------

@pytest.fixture(scope="module")
def portrait_strip(tmp_path_factory):
    """The filmstrip of a real 480x832 portrait clip, as ingest makes it."""
    from media_factory import make_video

    from lorad.media import convert

    folder = tmp_path_factory.mktemp("portrait")
    video = make_video(folder / "portrait.mp4", size="480x832", fps=16, seconds=1, audio=False)
    strip = convert.filmstrip(video, folder / "portrait.strip.jpg")
    assert strip is not None
    return strip


@SIZES
@pytest.mark.parametrize("screen_name", ["clips", "captions"])
async def test_a_portrait_filmstrip_is_drawn_at_its_aspect(ws, conn, size, screen_name,
                                                          portrait_strip):
    """A 480x832 strip was drawn into a fixed 56x10 (Captions) or 48x10 (Clips) box of cells,
    which are twice as tall as wide: 1.6 times too wide."""
    from test_captions import add_clip

    from lorad.media import datasets
    from tui.screens.captions import CaptionsScreen
    from tui.screens.clips import ClipsScreen
    from tui.widgets.filmstrip import Filmstrip, cell_pixels

    with Image.open(portrait_strip) as img:
        pixels = img.size
    frame = 480 / 832
    assert pixels[0] / pixels[1] == pytest.approx(3 * frame, rel=0.03)  # extraction keeps it
    ds = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait")
    clip = add_clip(conn, ds.id, "tall", state="ready")
    conn.execute("UPDATE clips SET filmstrip_path = ? WHERE id = ?", (str(portrait_strip), clip))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        if screen_name == "captions":
            await pilot.press("2")
        kind = CaptionsScreen if screen_name == "captions" else ClipsScreen
        await until(pilot, lambda: isinstance(app.screen, kind), message=screen_name)
        strip = app.screen.query_one(Filmstrip)
        drawn = strip.query_one("Image")
        await until(pilot, lambda: drawn.display and drawn.region.width > 0, message="drawn")
        await pilot.pause()
        cell_w, cell_h = cell_pixels()
        cols, rows = drawn.region.width, drawn.region.height
        assert rows >= 3 and drawn.region in strip.region  # inside its space, not cut
        shown = (cols * cell_w) / (rows * cell_h)
        assert shown == pytest.approx(pixels[0] / pixels[1], rel=0.08), (cols, rows)
        # the box it is centred in (letterboxed), not stretched to
        left = drawn.region.x - strip.content_region.x
        right = strip.content_region.right - drawn.region.right
        assert abs(left - right) <= 1


# -- 6. a "reject" verdict -------------------------------------------------------------------

def test_migration_016_keeps_every_rating_and_accepts_reject(tmp_path, monkeypatch):
    """The verdict CHECK is rebuilt with the table: rows (ids too), the index and the key to
    generations survive; reject is accepted and nonsense is still refused."""
    import sqlite3

    from lorad.core import store

    path = tmp_path / "db.sqlite"
    shipped = store.migration_files()
    monkeypatch.setattr(store, "migration_files", lambda: [m for m in shipped if m[0] < 16])
    conn = store.connect(path)
    with pytest.raises(sqlite3.IntegrityError):  # before: no such verdict
        conn.execute("INSERT INTO ratings (generation_id, verdict, created_at) VALUES"
                     " (1, 'reject', 0)")
    for g in (1, 2):
        conn.execute("INSERT INTO generations (id, endpoint, status, created_at, updated_at)"
                     " VALUES (?, 'fal-ai/wan-t2v-lora', 'completed', 0, 0)", (g,))
    rows = [(3, 1, 4, None, '["blur"]', "ok", 10.0), (7, 1, None, "retake", "[]", None, 11.0),
            (8, 2, 5, "approve", "[]", "best", 12.0), (9, 2, 2, "needs_review", "[]", None, 13.0)]
    conn.executemany("INSERT INTO ratings (id, generation_id, stars, verdict, tags, note,"
                     " created_at) VALUES (?,?,?,?,?,?,?)", rows)
    conn.close()
    monkeypatch.setattr(store, "migration_files", lambda: shipped)
    conn = store.connect(path)
    assert [tuple(r) for r in conn.execute("SELECT id, generation_id, stars, verdict, tags,"
                                           " note, created_at FROM ratings ORDER BY id")] == rows
    assert ratings.current(conn, 1).verdict == "retake"  # the latest is still the latest
    indexes = {r["name"]: r["sql"] for r in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ratings'")}
    assert "ratings_generation" in indexes and "generation_id, id" in indexes["ratings_generation"]
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ratings_new'").fetchone()
    ratings.rate(conn, 2, verdict="reject")
    assert ratings.current(conn, 2) == ratings.Rating(2, 2, "reject", (), None,
                                                      ratings.current(conn, 2).created_at)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO ratings (generation_id, verdict, created_at) VALUES"
                     " (1, 'meh', 0)")
    with pytest.raises(sqlite3.IntegrityError):  # the key to generations holds
        conn.execute("INSERT INTO ratings (generation_id, verdict, created_at) VALUES"
                     " (99, 'reject', 0)")
    conn.execute("DELETE FROM generations WHERE id = 1")  # and cascades
    assert [r[0] for r in conn.execute("SELECT id FROM ratings ORDER BY id")] == [8, 9, 10]


def test_lorad_rate_set_verdict_reject_and_the_rank_it_gives(ws, conn, capsys):
    from lorad.cli import main
    from lorad.cli.commands import build_parser

    _pod, run = make_run(conn)
    ckpt = add_checkpoint(conn, run.id, 24)
    good, bad = add_generation(conn, ckpt), add_generation(conn, ckpt)
    ratings.rate(conn, good, stars=5)
    ratings.rate(conn, bad, stars=5)  # liked at first, rejected on a second look
    assert main(["-w", str(ws.root), "rate", "set", str(bad), "--verdict", "reject"]) == 0
    assert "5 stars, reject" in capsys.readouterr().out
    assert ratings.current(conn, bad).verdict == "reject"
    assert main(["-w", str(ws.root), "rate", "rank"]) == 0
    assert "good 1/2" in capsys.readouterr().out  # a bad outcome, whatever its stars
    # the CLI offers exactly the verdicts ratings knows
    rate = build_parser()._subparsers._group_actions[0].choices["rate"]
    set_ = rate._subparsers._group_actions[0].choices["set"]
    verdict = next(a for a in set_._actions if a.dest == "verdict")
    assert tuple(verdict.choices) == ratings.VERDICTS


@SIZES
async def test_shift_x_rejects_on_the_generations_screen_and_the_sweep_grid(ws, conn, size):
    """Rejected generations are found by the quick filter and by verdict:reject; the key is the
    same on both screens, and help says it."""
    from lorad.generation import generations, loras
    from tui.screens.generations import GenerationsScreen
    from tui.screens.help import HelpScreen
    from tui.screens.sweep_grid import SweepGridScreen
    from tui.widgets.rowlist import RowList

    wan22 = "fal-ai/wan/v2.2-a14b/text-to-video/lora"
    for name in ("truck-v1", "truck-v2"):
        loras.add(conn, name, f"https://hf.example/{name}.safetensors", expert="high")
    plan = generations.plan_sweep(conn, wan22, lora_names=["truck-v1", "truck-v2"],
                                  scales=[0.6, 1.0], prompts=["TRK, a"], seeds=[5])
    ids = generations.submit_sweep(conn, plan, budget=None)
    conn.execute("UPDATE generations SET status = 'completed'")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="gens")
        screen = app.screen
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 4, message="rows")
        first = table.current_key
        await pilot.press("X")
        await until(pilot, lambda: (ratings.current(conn, first) or ratings.Rating(
            0, None, None, (), None, 0)).verdict == "reject", message="rejected")
        assert table.current_key != first  # moves on, as the other verdicts
        await until(pilot, lambda: any(x.rating and x.rating.verdict == "reject"
                                       for x in screen.data.rows), message="shown")
        while screen.FILTERS[screen.filter_index] != "reject":
            await pilot.press("f")
        await until(pilot, lambda: [x.gen.id for x in screen.data.rows] == [first],
                    message="the quick filter")
        await pilot.press("f")  # failed checks
        await pilot.press("f")  # all
        await pilot.press("slash", *"verdict:reject", "enter")
        await until(pilot, lambda: [x.gen.id for x in screen.data.rows] == [first],
                    message="the search")
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: len(screen.data.rows) == 4, message="all again")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), message="help")
        rows = {row[2]: row[0] for row in binding_rows(screen)}
        assert rows["verdict.reject"] == "X"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, message="help closed")
        other = next(i for i in ids if i != first)
        await pilot.press("g", *["j"] * table.index[other])
        assert table.current_key == other
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, SweepGridScreen), message="grid")
        grid = app.screen
        for key in ("right", "down", "left"):  # walk the 2x2 grid to it
            if grid.cell().gen.id == other:
                break
            await pilot.press(key)
        assert grid.cell().gen.id == other
        await pilot.press("X")
        await until(pilot, lambda: (ratings.current(conn, other) or ratings.Rating(
            0, None, None, (), None, 0)).verdict == "reject", message="rejected in the grid")
        assert {row[2]: row[0] for row in binding_rows(grid)}["verdict.reject"] == "X"
        await until(pilot, lambda: "reject" in " ".join(
            str(s.render()) for s in grid.query(".grid-cell Static")), message="the cell says")


# -- the eval loss beside the training loss (diffusion-pipe) -------------------------------------

@SIZES
async def test_the_eval_loss_is_a_second_curve_with_its_last_value(ws, conn, size):
    _pod, run = make_run(conn, points=300)
    runs.add_eval_losses(conn, run, [(0, 0.5), (100, 0.3), (200, 0.25), (300, 0.2125)],
                         time.time())
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await open_training(app, pilot)
        await until(pilot, lambda: screen.data.detail.evals, message="eval points read")
        legend = "\n".join(widget_lines(app, screen.query_one("#training-legend")))
        assert "eval 0.2125" in legend and "avr_loss (300)" in legend
        assert screen.data.detail.evals == [(0, 0.5), (100, 0.3), (200, 0.25), (300, 0.2125)]
