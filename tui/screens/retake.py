"""The retake dialog (`r` on the Generations screen): the same request again with a new random
seed (shown, and editable: type the old one to repeat it on purpose), a scale and the prompt,
and its price before anything is sent. enter sends it, escape does not."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..keys import keyed


class RetakeScreen(ModalScreen[dict[str, Any] | None]):
    DEFAULT_CSS = """
    RetakeScreen { align: center middle; }
    #retake-body { width: 72; max-width: 100%; height: auto; border: round $warning;
                   padding: 0 1; background: $surface; }
    #retake-body Input { margin: 0 0 0 0; }
    """
    BINDINGS = keyed([Binding("escape", "dismiss_none", "Do not send")])

    def __init__(self, gen, new_seed: int) -> None:
        super().__init__()
        self.gen = gen
        self.new_seed = new_seed

    def compose(self) -> ComposeResult:
        g = self.gen
        with Vertical(id="retake-body"):
            yield Static(Text(f"retake #{g.id} on {g.endpoint}: about ${g.cost or 0:.2f}",
                              style="bold"))
            yield Label(f"seed (the original's was {g.seed}; a new one by default)")
            yield Input(str(self.new_seed), id="retake-seed", type="integer")
            if g.scale is not None:
                yield Label("LoRA scale")
                yield Input(f"{g.scale:g}", id="retake-scale", type="number")
            yield Label("prompt")
            yield Input(g.prompt or "", id="retake-prompt")
            yield Static("", id="retake-error")
            yield Static(Text("enter sends it, escape does not", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#retake-seed", Input).focus()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        try:
            seed = int(self.query_one("#retake-seed", Input).value)
            scales = self.query("#retake-scale")
            scale = float(scales.first(Input).value) if scales else None
        except ValueError:
            self.query_one("#retake-error", Static).update(
                Text("the seed is a whole number and the scale a number", style="red"))
            return
        prompt = self.query_one("#retake-prompt", Input).value
        if not prompt.strip():
            self.query_one("#retake-error", Static).update(Text("the prompt is empty",
                                                                style="red"))
            return
        self.dismiss({"seed": seed, "scale": scale, "prompt": prompt})

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
