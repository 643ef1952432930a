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
    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.generations import GenerationsScreen

    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Go to Generations", "enter")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="gens")
        rows = app.screen.query_one(RowList)
        summary = app.screen.query_one("#gens-summary")
        await until(pilot, lambda: "[all]" in str(summary.render()), message="[all] shown")
        assert rows.empty_text.startswith("no generations: `lorad gen")
        await pilot.press("f")
        await until(pilot, lambda: "[unrated]" in str(summary.render()), message="the filter")
        assert rows.empty_text.startswith("nothing matches [unrated]")
