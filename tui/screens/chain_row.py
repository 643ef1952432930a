"""A shot chain as a row of shots (`v` on a chain's generation in the Generations screen): each
shot's filmstrip with its number, generation, state and check, in order, so a jump in the
continuity shows where it happens. `lorad chain retake NAME N` runs a shot and those after it
again, priced first."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keys import keyed
from ..widgets.filmstrip import Filmstrip

SHOTS_PER_ROW = 4  # four filmstrips side by side still fit 80 columns


def shot_label(number: int, gen) -> Text:
    if gen is None:
        return Text(f"shot {number}: not yet", style="dim")
    text = Text(f"shot {number}  #{gen.id}", style="bold")
    if gen.status != "completed":
        text.append(f"  {gen.status}", style="yellow")
    elif gen.checks and not gen.checks.get("ok", True):
        text.append("  FLAG", style="red")
    return text


class ChainRowScreen(ModalScreen[None]):
    BINDINGS = keyed([Binding("escape,q,v", "dismiss", "Close")])

    def __init__(self, chain, shots: list[Any], images: dict[int, Any]) -> None:
        super().__init__()
        self.chain = chain
        self.shots = shots  # Generation or None, per shot
        self.images = images  # generation id -> PIL image (loaded in a worker)

    def compose(self) -> ComposeResult:
        c = self.chain
        state = c.status + (f": {c.error}" if c.error else "")
        how = "each from the last frame before" if c.spec.chain_last_frame else \
            "each from its start image"
        with Vertical(id="grid-body"):
            yield Static(Text.assemble((f"chain {c.name}", "bold"),
                                       f"  {len(self.shots)} shots, {how}\n", (state, "dim")),
                         id="grid-title")
            grid = Grid(id="grid-cells")
            grid.styles.grid_size_columns = max(1, min(SHOTS_PER_ROW, len(self.shots)))
            with grid:
                for n, gen in enumerate(self.shots, 1):
                    with Vertical(classes="grid-cell"):
                        yield Static(shot_label(n, gen))
                        yield Filmstrip()

    def on_mount(self) -> None:
        for strip, gen in zip(self.query(Filmstrip), self.shots, strict=False):
            strip.show_image(self.images.get(gen.id) if gen else None)
