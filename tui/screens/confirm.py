"""A question before something costly or irreversible: the keys say the choices, escape keeps
things as they are."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keys import keyed


class ConfirmScreen(ModalScreen[str | None]):
    """Dismissed with the key of the choice taken (None: escape)."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    #confirm-body { width: 72; max-width: 100%; height: auto; border: round $warning;
                    padding: 0 1; background: $surface; }
    """
    BINDINGS = keyed([Binding("escape", "dismiss_none", "Keep as is")])

    def __init__(self, question: str, choices: dict[str, str]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices  # key -> what it does

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-body"):
            yield Static(Text(self.question))
            yield Static(Text("  ".join(f"{k}: {what}" for k, what in self.choices.items())
                              + "  escape: keep as is", style="bold"))

    def on_key(self, event) -> None:
        if event.key in self.choices:
            event.stop()
            self.dismiss(event.key)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def ask_stars(app, gen_id: int, rate) -> None:
    """`s` on a generation: a digit 1-5 gives it that many stars (`rate(stars=n)`)."""

    def chosen(key: str | None) -> None:
        if key:
            rate(stars=int(key))

    app.push_screen(ConfirmScreen(f"#{gen_id}: how many stars?",
                                  {str(n): "★" * n for n in range(1, 6)}), chosen)
