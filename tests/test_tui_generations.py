"""Pilot tests of the Generations screen: rating keys, retake, tags, filter, compare."""

from __future__ import annotations

import pytest
from helpers import SIZE_IDS, SIZES, dump, widget_lines
from helpers import pilot_until as until

from lorad.core import jobs
from lorad.generation import generations, loras, ratings
from tui.app import LoradApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.generations import CompareScreen, GenerationsScreen
from tui.screens.retake import RetakeScreen
from tui.widgets.rowlist import RowList

WAN22 = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


@pytest.fixture
def gens(conn):
    loras.add(conn, "truck-v1", "https://hf.example/t.safetensors", expert="high")
    ids = [generations.create(conn, WAN22, "TRK, a truck", lora="truck-v1", scale=s, seed=1)
           for s in (0.6, 0.8, 1.0)]
    conn.execute("UPDATE generations SET status = 'completed'")
    return ids


async def open_gens(app, pilot, rows: int):
    """Go to the Generations screen and wait for its `rows` rows; (screen, its list)."""
    await pilot.press("ctrl+p")
    await pilot.press(*"Go to Generations", "enter")
    await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="screen")
    table = app.screen.query_one(RowList)
    await until(pilot, lambda: len(table.rows) == rows, message=f"{rows} rows")
    return app.screen, table


async def test_rate_approve_retake_tag(ws, conn, gens):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(170, 45)) as pilot:
        screen, table = await open_gens(app, pilot, rows=3)
        await pilot.press("s", "4")  # a digit alone switches screens, as everywhere
        await until(pilot, lambda: (ratings.current(conn, gens[0]) or ratings.Rating(
            0, None, None, (), None, 0)).stars == 4, message="stars")
        await pilot.press("a")  # approve keeps the stars, moves on
        await until(pilot, lambda: ratings.current(conn, gens[0]).verdict == "approve")
        assert ratings.current(conn, gens[0]).stars == 4
        assert table.current_key == gens[1]
        await pilot.press("r")  # paid: a dialog with the price, a new seed, scale, prompt
        await until(pilot, lambda: isinstance(app.screen, RetakeScreen), message="the dialog")
        dialog = app.screen
        assert "about $" in str(dialog.query("Static").first().render())
        shown = int(dialog.query_one("#retake-seed").value)
        assert shown != 1  # a new seed unless asked
        dialog.query_one("#retake-scale").value = "0.5"
        dialog.query_one("#retake-prompt").value = "TRK, a truck by a red barn"
        assert len(generations.list_all(conn)) == 3  # nothing sent yet
        await pilot.press("enter")
        await until(pilot, lambda: len(generations.list_all(conn)) == 4, message="retake")
        retake = generations.list_all(conn)[-1]
        assert retake.parent_id == gens[1] and retake.seed == shown
        assert retake.scale == 0.5 and retake.params["loras"][0]["scale"] == 0.5
        assert retake.prompt == retake.params["prompt"] == "TRK, a truck by a red barn"
        assert jobs.get(conn, retake.job_id).state == "queued"
        await pilot.press("t", *"spinning tires", "enter")
        await until(pilot, lambda: "spinning tires" in ratings.current(conn, gens[1]).tags)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_retake_dialog_shows_its_price_and_a_new_seed_whole(ws, conn, gens, size):
    """As drawn: the price, the original's seed said, a new one in the seed box, the keys."""
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="screen")
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 3, message="3 rows")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RetakeScreen), message="the dialog")
        dialog = app.screen
        shown = dialog.query_one("#retake-seed").value
        await until(pilot, lambda: "enter sends it" in "\n".join(
            widget_lines(app, dialog.query_one("#retake-body"))), message=lambda: dump(app))
        seen = "\n".join(widget_lines(app, dialog.query_one("#retake-body")))
        assert f"retake #{dialog.gen.id} on {WAN22}: about $" in seen, dump(app)
        assert "seed (the original's was 1;" in seen, dump(app)  # every one of them: seed 1
        box = " ".join(widget_lines(app, dialog.query_one("#retake-seed"))).split()
        assert shown in box and "1" not in box, dump(app)  # new, and not the original's
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="back")
    assert len(generations.list_all(conn)) == 3  # nothing sent


async def test_filter_unrated_and_compare(ws, conn, gens):
    ratings.rate(conn, gens[0], stars=5)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(170, 45)) as pilot:
        screen, table = await open_gens(app, pilot, rows=3)
        await pilot.press("f")  # unrated
        await until(pilot, lambda: [table.key_of(r) for r in table.rows] == gens[1:])
        await pilot.press("m", "m", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), message="compare")
        assert [x.gen.id for x, _ in app.screen.items] == gens[1:]


async def test_x_cancels_a_queued_generation(ws, conn, gens):
    conn.execute("UPDATE generations SET status = 'queued' WHERE id = ?", (gens[0],))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(170, 45)) as pilot:
        screen, table = await open_gens(app, pilot, rows=3)
        await pilot.press("x", "y")  # asked first
        await until(pilot, lambda: generations.get(conn, gens[0]).status == "cancelled",
                    message="cancelled")
        assert jobs.get(conn, generations.get(conn, gens[0]).job_id).state == "cancelled"
        await pilot.press("x", "y")  # a finished one: a readable toast, nothing else
        await until(pilot, lambda: any("nothing to cancel" in str(n.message)
                                       for n in app._notifications), message="toast")


async def test_slash_filters_by_scale_and_status(ws, conn, gens):
    conn.execute("UPDATE generations SET status = 'failed' WHERE id = ?", (gens[2],))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(170, 45)) as pilot:
        screen, table = await open_gens(app, pilot, rows=3)
        await pilot.press("slash", *"scale:0.8", "enter")
        await until(pilot, lambda: [x.gen.id for x in screen.data.rows] == [gens[1]],
                    message="scale filter")
        await pilot.press("slash", "ctrl+u", *"status:failed lora:truck", "enter")
        await until(pilot, lambda: [x.gen.id for x in screen.data.rows] == [gens[2]],
                    message="status filter")
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: len(screen.data.rows) == 3, message="cleared")


def test_filter_words():
    from tui.screens.generations import GenRow, matches

    g = generations.Generation(1, WAN22, {}, "completed", scale=0.6, sweep_id="abc123",
                               prompt="TRK, a red truck")
    row = GenRow(g, "truck-e4", ratings.Rating(1, 4, "approve", (), None, 0), "truck-000004")
    for query in ("red", "ckpt:000004 scale:0.6", "scale:.60", "sweep:abc verdict:approve",
                  "lora:e4"):
        assert matches(row, query), query
    for query in ("blue", "scale:0.8", "scale:x", "verdict:retake", "status:failed",
                  "ckpt:000008"):
        assert not matches(row, query), query


async def test_v_shows_the_sweep_as_a_lora_by_scale_grid(ws, conn, gens, tmp_path):
    from fal_double import media

    from tui.screens.sweep_grid import SweepGridScreen

    loras.add(conn, "truck-v2", "https://hf.example/t2.safetensors", expert="high")
    plan = generations.plan_sweep(conn, WAN22, lora_names=["truck-v1", "truck-v2"],
                                  scales=[1.0, 0.6], prompts=["TRK, a", "TRK, b"], seeds=[5])
    ids = generations.submit_sweep(conn, plan, budget=None)
    video = tmp_path / "gen.mp4"
    video.write_bytes(media()["motion"])
    from lorad.media import convert as media_mod

    media_mod.filmstrip(video, video.with_suffix(".strip.jpg"))
    conn.execute(f"UPDATE generations SET status = 'completed', output_path = ? WHERE id IN"
                 f" ({','.join(map(str, ids))})", (str(video),))
    ratings.rate(conn, ids[0], stars=5, verdict="approve")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(170, 50)) as pilot:
        screen, table = await open_gens(app, pilot, rows=11)
        await pilot.press("v")  # on a generation outside any sweep: says what to do
        await until(pilot, lambda: any("the grid shows a sweep" in str(n.message)
                                       for n in app._notifications),
                    message=f"hint {[str(n.message) for n in app._notifications]} "
                            f"{table.current_key} {app.screen}")
        await pilot.press("end", "v")
        await until(pilot, lambda: isinstance(app.screen, SweepGridScreen), message="grid")
        grid = app.screen
        assert len(grid.pages) == 2 and grid.pages[grid.index].prompt == "TRK, b"
        page = grid.pages[0]
        assert page.loras == ["truck-v1", "truck-v2"] and page.scales == [0.6, 1.0]
        assert len(grid.query(".grid-cell")) == 4 and len(grid.images) == 8
        await pilot.press("]")
        await until(pilot, lambda: grid.index == 0, message="next page")
        labels = " ".join(str(s.render()) for s in grid.query(".grid-cell Static"))
        assert "★★★★★ approve" in labels and "truck-v2 @ 0.6" in labels
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="back")


async def test_r_asks_before_sending_a_lost_submit_again(ws, conn, gens):
    """A generation whose submit answer was lost is shown, and the person decides: escape
    keeps it, y sends it again (a new job), f forgets it."""

    lost = gens[0]
    generations.mark_unknown(conn, lost, "the answer was lost")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, table = await open_gens(app, pilot, rows=3)
        assert "answers lost 1" in str(screen.query_one("#gens-summary").render())
        await pilot.press("g")  # the first row: the lost one
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="question")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, message="back")
        assert generations.get(conn, lost).status == "unknown"
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="question")
        await pilot.press("y")
        await until(pilot, lambda: generations.get(conn, lost).status == "queued",
                    message="sent again")
    assert jobs.get(conn, generations.get(conn, lost).job_id).state == "queued"


async def test_a_digit_switches_screens_on_the_generations_screen_too(ws, conn, gens):
    """Pressing 1 to go to Clips rated the video one star and changed a checkpoint's rank."""
    from tui.screens.clips import ClipsScreen

    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_gens(app, pilot, rows=3)
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ClipsScreen), message="clips")
    assert all(ratings.current(conn, g) is None for g in gens)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_sweep_grid_is_walked_and_rated_from_the_keyboard(ws, conn, gens, tmp_path,
                                                                    size):
    """Only the first row of LoRAs could be seen at 80x24, and nothing could be rated there.
    Arrows and hjkl move the cursor cell; the grid scrolls to the rows that were out of sight."""
    from tui.screens.sweep_grid import SweepGridScreen, cell_label

    loras.add(conn, "truck-v2", "https://hf.example/t2.safetensors", expert="high")
    loras.add(conn, "truck-v3", "https://hf.example/t3.safetensors", expert="high")
    plan = generations.plan_sweep(conn, WAN22, lora_names=["truck-v1", "truck-v2", "truck-v3"],
                                  scales=[0.6, 1.0], prompts=["TRK, a"], seeds=[5])
    ids = generations.submit_sweep(conn, plan, budget=None)
    conn.execute(f"UPDATE generations SET status = 'completed' WHERE id IN "
                 f"({','.join(map(str, ids))})")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await open_gens(app, pilot, rows=9)
        await pilot.press("end", "v")
        await until(pilot, lambda: isinstance(app.screen, SweepGridScreen), message="grid")
        grid = app.screen
        cells = list(grid.query(".grid-cell"))
        page = grid.pages[grid.index]
        label = {n: cell_label(page.cells[lora, scale]).plain.split("  ")[0] for n, (lora, scale)
                 in enumerate((lora, scale) for lora in page.loras for scale in page.scales)}

        def in_sight() -> str:  # the grid as drawn
            return "\n".join(widget_lines(app, grid.query_one("#grid-cells")))

        def framed(n: int) -> bool:  # the cursor's border drawn around cell n's label
            return f"│{label[n]}" in in_sight()

        await until(pilot, lambda: framed(0),
                    message=lambda: f"the cursor on the first cell\n{dump(app)}")
        assert cells[0].has_class("-cursor")
        assert label[5] not in in_sight()  # truck-v3 @ 1.0: the third row, below the fold
        await pilot.press("down", "j", "l")  # truck-v3 @ 1.0
        assert (grid.row, grid.col) == (2, 1) and cells[5].has_class("-cursor")
        assert not cells[0].has_class("-cursor")
        await until(pilot, lambda: framed(5),
                    message=lambda: f"scrolled to the cursor\n{dump(app)}")
        assert label[0] not in in_sight() and not framed(4)
        target = grid.cell().gen.id
        assert grid.cell().lora == "truck-v3" and grid.cell().gen.scale == 1.0
        await pilot.press("a")
        await until(pilot, lambda: (ratings.current(conn, target) or ratings.Rating(
            0, None, None, (), None, 0)).verdict == "approve", message="approved")
        await pilot.press("s", "3")
        await until(pilot, lambda: ratings.current(conn, target).stars == 3, message="stars")
        await until(pilot, lambda: "★★★" in str(cells[5].query_one("Static").render()),
                    message="the cell says so")
        await until(pilot, lambda: "★★★ approve" in in_sight(),
                    message=lambda: f"the rating in sight\n{dump(app)}")
        await pilot.press("h")
        assert (grid.row, grid.col) == (2, 0)
        await until(pilot, lambda: framed(4), message="h moved it left")
        await pilot.press("k", "up", "k", "left", "h")  # stops at the edges
        assert (grid.row, grid.col) == (0, 0)
        await until(pilot, lambda: framed(0),
                    message=lambda: f"scrolled back up\n{dump(app)}")
        assert label[5] not in in_sight()


async def test_keys_are_remapped_from_the_config(ws, conn, gens):
    """[tui.keys] maps a binding id to a key on every screen; an unknown id is said."""
    ws.config_path.write_text(ws.config_path.read_text()
                              + '\n[tui.keys]\nretake = "e"\n"verdict.approve" = "A"\n'
                                'retkae = "x"\n')
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_gens(app, pilot, rows=3)
        await pilot.press("r")  # no longer retake
        await pilot.pause()
        assert not isinstance(app.screen, RetakeScreen)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, RetakeScreen), message="retake on e")
        await pilot.press("escape")
        await pilot.press("A")
        await until(pilot, lambda: (ratings.current(conn, gens[0]) or ratings.Rating(
            0, None, None, (), None, 0)).verdict == "approve", message="approve on A")
        assert any("tui.keys.retkae: no key has that id" in str(n.message)
                   for n in app._notifications)
