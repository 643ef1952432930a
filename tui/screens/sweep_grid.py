"""A sweep as a grid (`v` on the Generations screen): one row per LoRA, one column per scale,
each cell the filmstrip of that generation, for one prompt and seed at a time (`[` / `]`).
Fixed seeds make the cells comparable: only the LoRA and the scale change across the grid.
Arrows (or hjkl) move a cursor from cell to cell, and the grid scrolls to it; `s` then 1-5
rates the cell, `a` approves, `n` marks it for review, `X` rejects it, `space` plays it (the
same keys as on the Generations screen)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from lorad.generation import ratings

from ..keys import keyed
from ..widgets.filmstrip import Filmstrip


@dataclass
class Page:
    prompt: str
    seed: int | None
    loras: list[str]
    scales: list[float | None]
    cells: dict[tuple[str, float | None], Any] = field(default_factory=dict)  # -> GenRow


def pages_of(rows: list) -> list[Page]:
    """The sweep's generations (GenRows) as pages by (prompt, seed); a retake does not take a
    cell from its original unless the original failed."""
    pages: dict[tuple[str, int | None], Page] = {}
    for x in sorted(rows, key=lambda x: x.gen.id):
        g = x.gen
        page = pages.setdefault((g.prompt or "", g.seed), Page(g.prompt or "", g.seed, [], []))
        if x.lora not in page.loras:
            page.loras.append(x.lora)
        if g.scale not in page.scales:
            page.scales.append(g.scale)
        key = (x.lora, g.scale)
        if key not in page.cells or page.cells[key].gen.status != "completed":
            page.cells[key] = x
    for page in pages.values():
        page.scales.sort(key=lambda s: (s is None, s or 0))
    return list(pages.values())


def cell_label(x) -> Text:
    g, r = x.gen, x.rating
    text = Text(f"#{g.id} {x.lora} @ {g.scale:g}" if g.scale is not None else f"#{g.id} {x.lora}",
                style="bold")
    if g.status != "completed":
        text.append(f"  {g.status}", style="yellow")
    elif g.checks and not g.checks.get("ok", True):
        text.append("  FLAG", style="red")
    if r is not None:
        text.append(f"  {'★' * (r.stars or 0)} {r.verdict or ''}", style="green")
    return text


class SweepGridScreen(ModalScreen[None]):
    BINDINGS = keyed([
        Binding("escape,q,v", "dismiss", "Close"),
        Binding("right_square_bracket", "page(1)", "Next prompt/seed", key_display="]"),
        Binding("left_square_bracket", "page(-1)", "Previous", key_display="["),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("s", "ask_stars", "Stars"),
        Binding("a", "verdict('approve')", "Approve"),
        Binding("n", "verdict('needs_review')", "Needs review"),
        Binding("X", "verdict('reject')", "Reject"),
        Binding("space", "play", "Play"),
    ])

    def __init__(self, sweep_id: str, pages: list[Page], images: dict[int, Any],
                 start: int = 0) -> None:
        super().__init__()
        self.sweep_id = sweep_id
        self.pages = pages
        self.images = images  # generation id -> PIL image (loaded in a worker)
        self.index = start
        self.row, self.col = 0, 0  # the cursor cell

    def compose(self) -> ComposeResult:
        page = self.pages[self.index]
        with Vertical(id="grid-body"):
            yield Static(Text.assemble(
                (f"sweep {self.sweep_id}", "bold"),
                f"  prompt/seed {self.index + 1} of {len(self.pages)} ([ ] to switch)  seed "
                f"{page.seed}\n", (page.prompt, "dim")), id="grid-title")
            grid = Grid(id="grid-cells")
            grid.styles.grid_size_columns = max(1, len(page.scales))
            with grid:
                for lora in page.loras:
                    for scale in page.scales:
                        x = page.cells.get((lora, scale))
                        with Vertical(classes="grid-cell"):
                            yield Static(cell_label(x) if x else Text(f"{lora} @ {scale}: none",
                                                                      style="dim"))
                            yield Filmstrip()

    def on_mount(self) -> None:
        self._fill()
        self._show_cursor()

    def _fill(self) -> None:
        page = self.pages[self.index]
        strips = list(self.query(Filmstrip))
        keys = [(lora, scale) for lora in page.loras for scale in page.scales]
        for strip, key in zip(strips, keys, strict=False):
            x = page.cells.get(key)
            strip.show_image(self.images.get(x.gen.id) if x else None)

    async def action_page(self, step: int) -> None:
        if len(self.pages) > 1:
            self.index = (self.index + step) % len(self.pages)
            await self.recompose()
            self._fill()
            self._show_cursor()

    # -- the cursor cell ----------------------------------------------------------------------
    def cell(self):
        """The GenRow under the cursor, or None for an empty cell."""
        page = self.pages[self.index]
        if not page.loras or not page.scales:
            return None
        return page.cells.get((page.loras[self.row], page.scales[self.col]))

    def _show_cursor(self) -> None:
        page = self.pages[self.index]
        self.row = min(self.row, max(0, len(page.loras) - 1))
        self.col = min(self.col, max(0, len(page.scales) - 1))
        at = self.row * max(1, len(page.scales)) + self.col
        for n, widget in enumerate(self.query(".grid-cell")):
            widget.set_class(n == at, "-cursor")
            if n == at:
                widget.scroll_visible(animate=False)

    def action_move(self, rows: int, cols: int) -> None:
        page = self.pages[self.index]
        self.row = max(0, min(len(page.loras) - 1, self.row + rows))
        self.col = max(0, min(len(page.scales) - 1, self.col + cols))
        self._show_cursor()

    def _rate(self, **kw) -> None:
        x = self.cell()
        if x is None:
            self.notify("no generation in this cell", severity="warning")
            return
        self._write_rating(x.gen.id, kw)

    @work(thread=True, group="grid-rate")
    def _write_rating(self, gen_id: int, kw: dict) -> None:
        with self.app.connection() as conn:
            rating = ratings.rate(conn, gen_id, **kw)
        self.app.call_from_thread(self._rated, gen_id, rating)

    def _rated(self, gen_id: int, rating) -> None:
        page = self.pages[self.index]
        for key, x in page.cells.items():
            if x.gen.id == gen_id:
                x.rating = rating
                at = page.loras.index(key[0]) * len(page.scales) + page.scales.index(key[1])
                self.query(".grid-cell")[at].query_one(Static).update(cell_label(x))

    def action_ask_stars(self) -> None:
        from .confirm import ask_stars

        x = self.cell()
        if x is not None:
            ask_stars(self.app, x.gen.id, self._rate)

    def action_verdict(self, verdict: str) -> None:
        self._rate(verdict=verdict)

    def action_play(self) -> None:
        x = self.cell()
        if x is None or not x.gen.output_path:
            self.notify("no output in this cell yet", severity="warning")
            return
        self.app.play_media(x.gen.output_path, f"#{x.gen.id} {x.lora} @ {x.gen.scale}")
