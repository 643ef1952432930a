"""A sweep as a grid (`v` on the Generations screen): one row per LoRA, one column per scale,
each cell the filmstrip of that generation, for one prompt and seed at a time (`[` / `]`).
Fixed seeds make the cells comparable: only the LoRA and the scale change across the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

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
    BINDINGS = [
        Binding("escape,q,v", "dismiss", "Close"),
        Binding("right_square_bracket,right", "page(1)", "Next prompt/seed"),
        Binding("left_square_bracket,left", "page(-1)", "Previous"),
    ]

    def __init__(self, sweep_id: str, pages: list[Page], images: dict[int, Any],
                 start: int = 0) -> None:
        super().__init__()
        self.sweep_id = sweep_id
        self.pages = pages
        self.images = images  # generation id -> PIL image (loaded in a worker)
        self.index = start

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
