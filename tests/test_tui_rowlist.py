"""RowList as a person sees it: a cell's own colour shows, on plain rows and under the cursor."""

from __future__ import annotations

import pytest
from helpers import SIZE_IDS, SIZES, dump, looks_red, styles_of, widget_lines, widget_strips
from rich.text import Text
from textual.app import App, ComposeResult

from tui.widgets.rowlist import Column, RowList


class ListApp(App):
    def compose(self) -> ComposeResult:
        rows = RowList([Column("id", 4), Column("state", 8)], key_of=lambda r: r[0])
        rows.set_rows([("1", Text("error", style="bold red")), ("2", Text("ready", style="green"))])
        yield rows


def colour_of(strip, word: str):
    return next(seg.style.color.name for seg in strip if word in seg.text)


async def test_a_cells_colour_is_not_painted_over_by_the_rows_style():
    """Every status, lint badge and flag rendered grey: the row's style went over the cell's."""
    app = ListApp()
    async with app.run_test(size=(40, 6)) as pilot:
        rows = app.query_one(RowList)
        rows.focus()
        await pilot.pause()
        assert colour_of(rows.render_line(1), "error") == "red"  # under the cursor too
        assert colour_of(rows.render_line(2), "ready") == "green"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_active_filter_shows_and_an_empty_result_says_it_is_the_filter(ws, conn,
                                                                                 size):
    """`[all]` vanished as Rich markup, and an empty filter result said "no generations: lorad
    gen ..." as if the workspace were empty."""
    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.generations import GenerationsScreen

    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="gens")
        rows = app.screen.query_one(RowList)
        summary = app.screen.query_one("#gens-summary")

        def shown(widget, text: str) -> bool:  # on the terminal, not only in the widget
            return any(text in line for line in widget_lines(app, widget))

        await until(pilot, lambda: shown(summary, "0 shown [all]"), message="[all] shown")
        assert shown(rows, "no generations: N, Generate"), dump(app)
        await pilot.press("f")
        await until(pilot, lambda: shown(summary, "0 shown [unrated]"), message="the filter")
        await until(pilot, lambda: shown(rows, "nothing matches [unrated]"),
                    message=lambda: f"the empty list blames the filter\n{dump(app)}")
        await pilot.press("slash", *"lora:x", "enter")  # a search too: said as typed
        await until(pilot, lambda: shown(summary, "0 shown [unrated lora:x]"),
                    message=lambda: f"the search\n{dump(app)}")
        assert shown(rows, "nothing matches [unrated lora:x]"), dump(app)


def test_columns_give_way_in_their_order_and_the_growing_one_takes_the_rest():
    from tui.widgets.rowlist import fit

    cols = [Column("id", 5, keep=3), Column("name", 16, keep=2), Column("state", 9, keep=4),
            Column("lint", 6), Column("caption", 24, grow=True)]
    assert [c.title for _i, c in fit(cols, 44)] == ["lint", "caption"]
    assert fit(cols, 44)[-1][1].width == 44 - 7 - 1  # the caption takes what is left
    assert [c.title for _i, c in fit(cols, 60)] == ["id", "name", "lint", "caption"]
    assert [c.title for _i, c in fit(cols, 80)] == ["id", "name", "state", "lint", "caption"]
    assert [i for i, _c in fit(cols, 60)] == [0, 1, 3, 4]  # cells are picked by index


def header_and_line(app, table, text: str) -> tuple[list[str], object]:
    """A list as drawn: its column titles, and the line showing `text` (as a Strip)."""
    strips = widget_strips(app, table)
    return strips[0].text.split(), next((s for s in strips[1:] if text in s.text), None)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_caption_the_rating_and_a_state_stay_in_sight_and_red_when_wrong(ws, conn,
                                                                                   size):
    """At 80x24 most lists showed only id and name; Captions showed 11 characters. What
    matters stays at 80 columns (the caption, the rating, a clip's state and flags), more
    columns come at 120, and an error is drawn red."""
    from helpers import WAN22, queue_generation
    from helpers import pilot_until as until
    from test_captions import add_clip
    from test_tui_clips import insert_clips

    from lorad.captions import versions
    from lorad.generation import generations, loras, ratings
    from lorad.media import datasets
    from tui.app import LoradApp
    from tui.screens.captions import CaptionsScreen
    from tui.screens.clips import ClipsScreen
    from tui.screens.generations import GenerationsScreen

    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    clip = add_clip(conn, d.id, "c", state="ready")
    versions.set_caption(conn, clip, "TRK, a white pickup truck parked on a dirt road")
    add_clip(conn, d.id, "u", state="ready")  # no caption: a lint error
    (bad,) = insert_clips(conn, d.id, 1, state="error", error="no video stream")
    loras.add(conn, "truck-e8", "https://hf.example/e8.safetensors", expert="high")
    rated = queue_generation(conn)
    failed = generations.create(conn, WAN22, "TRK, a truck", lora="truck-e8", seed=3)
    conn.execute("UPDATE generations SET status = 'completed' WHERE id = ?", (rated,))
    conn.execute("UPDATE generations SET status = 'failed' WHERE id = ?", (failed,))
    ratings.rate(conn, rated, stars=4, verdict="approve")
    wide = size[0] >= 120
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        # Captions: the text (at least its first 24 characters) and the lint badge
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, CaptionsScreen), message="captions")
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: header_and_line(app, table, "TRK, a white pickup truc")[1]
                    is not None, message=lambda: f"the caption in sight\n{dump(app)}")
        titles, line = header_and_line(app, table, "TRK, a white pickup truc")
        assert {"lint", "caption"} <= set(titles), titles
        assert not wide or {"id", "name", "state"} <= set(titles), titles
        uncaptioned = header_and_line(app, table, "(no caption)")[1]
        assert all(looks_red(app, st) for st in styles_of(uncaptioned, "✗")), dump(app)
        assert not any(looks_red(app, st) for st in styles_of(line, "✓"))

        # Generations: status, stars and verdict; the LoRA and scale at 120; failed in red
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="gens")
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2, message="two generations")
        await pilot.press("end")  # the cursor on the failed one: red under the cursor too
        await pilot.pause()
        titles, line = header_and_line(app, table, "★★★★")
        assert {"status", "stars", "verdict"} <= set(titles) and "approve" in line.text, \
            dump(app)
        assert not wide or {"lora", "scale"} <= set(titles), titles
        failed_line = header_and_line(app, table, " failed")[1]
        assert all(looks_red(app, st) for st in styles_of(failed_line, " failed ")), dump(app)
        assert not any(looks_red(app, st) for st in styles_of(line, "completed"))

        # Clips: the state and the flags; the id and the message at 120; an error in red,
        # under the cursor too
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ClipsScreen), message="clips")
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 3, message="three clips")
        table.set_cursor(table.index[bad])
        await pilot.pause()
        titles, line = header_and_line(app, table, " error")
        assert {"name", "state", "flags"} <= set(titles), titles
        assert not wide or {"id", "message"} <= set(titles), titles
        assert all(looks_red(app, st) for st in styles_of(line, " error ")), dump(app)
        assert not wide or "no video stream" in line.text
        ready = header_and_line(app, table, " ready")[1]
        assert not any(looks_red(app, st) for st in styles_of(ready, " ready "))


def test_a_clip_filter_takes_the_badge_text_a_person_sees():
    """`flag:near-dup` (what the list shows) found nothing: the flag is near_duplicate."""
    from tui.screens.clips import parse_filter

    assert parse_filter("flag:near-dup truck")["flag"] == "near_duplicate"
    assert parse_filter("flag:bars")["flag"] == "letterboxed"
    assert parse_filter("flag:panning")["flag"] == "panning"


async def test_a_marked_row_does_not_look_like_a_rejected_one():
    """Marked rows were drawn in the warning colour, as rejected clips are."""
    app = ListApp()
    async with app.run_test(size=(40, 6)) as pilot:
        rows = app.query_one(RowList)
        rows.action_cursor_down()
        rows.marked.add("1")
        await pilot.pause()
        marked = [seg for seg in rows.render_line(1) if seg.text.strip()]
        assert all(seg.style.bgcolor is not None and seg.style.bold for seg in marked)
        assert colour_of(rows.render_line(1), "error") == "red"  # its own colours stay
