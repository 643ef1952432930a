"""RowList as a person sees it: a cell's own colour shows, on plain rows and under the cursor."""

from __future__ import annotations

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


async def test_the_active_filter_shows_and_an_empty_result_says_it_is_the_filter(ws, conn):
    """`[all]` vanished as Rich markup, and an empty filter result said "no generations: lorad
    gen ..." as if the workspace were empty."""
    from helpers import go_to
    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.generations import GenerationsScreen

    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await go_to(app, pilot, "Generations", GenerationsScreen)
        rows = app.screen.query_one(RowList)
        summary = app.screen.query_one("#gens-summary")
        await until(pilot, lambda: "[all]" in str(summary.render()), message="[all] shown")
        assert rows.empty_text.startswith("no generations: `lorad gen")
        await pilot.press("f")
        await until(pilot, lambda: "[unrated]" in str(summary.render()), message="the filter")
        assert rows.empty_text.startswith("nothing matches [unrated]")


def test_columns_give_way_in_their_order_and_the_growing_one_takes_the_rest():
    from tui.widgets.rowlist import fit

    cols = [Column("id", 5, keep=3), Column("name", 16, keep=2), Column("state", 9, keep=4),
            Column("lint", 6), Column("caption", 24, grow=True)]
    assert [c.title for _i, c in fit(cols, 44)] == ["lint", "caption"]
    assert fit(cols, 44)[-1][1].width == 44 - 7 - 1  # the caption takes what is left
    assert [c.title for _i, c in fit(cols, 60)] == ["id", "name", "lint", "caption"]
    assert [c.title for _i, c in fit(cols, 80)] == ["id", "name", "state", "lint", "caption"]
    assert [i for i, _c in fit(cols, 60)] == [0, 1, 3, 4]  # cells are picked by index


async def test_at_80x24_the_caption_and_the_rating_stay_in_sight(ws, conn):
    """At 80x24 most lists showed only id and name; Captions showed 11 characters."""
    from helpers import pilot_until as until
    from test_captions import add_clip

    from lorad.captions import versions
    from lorad.media import datasets
    from tui.app import LoradApp
    from tui.screens.captions import CaptionsScreen

    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    clip = add_clip(conn, d.id, "c", state="ready")
    versions.set_caption(conn, clip, "TRK, a white pickup truck parked on a dirt road")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, CaptionsScreen), message="captions")
        rows = app.screen.query_one(RowList)
        await until(pilot, lambda: len(rows.rows) == 1, message="row")
        line = "".join(seg.text for seg in rows.render_line(1))
        assert "TRK, a white pickup truck parked" in line


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
