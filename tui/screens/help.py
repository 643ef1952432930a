"""The `?` screen: every binding of the screen it was opened from, generated, never hand-kept."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..keys import keyed


def binding_rows(screen: Screen) -> list[tuple[str, str]]:
    """(keys, description) for the screen's and the app's bindings, in the order they apply."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or binding.action in seen and binding.show is False:
            continue
        rows.append((screen.app.get_key_display(binding), binding.description))
        seen.add(binding.action)
        del key
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = keyed([Binding("escape,q,question_mark", "dismiss", "Close help")])

    def __init__(self, target: Screen):
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        title = getattr(self.target, "LABEL", None) or self.target.__class__.__name__
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        for keys, description in binding_rows(self.target):
            table.add_row(keys, description)
        about = getattr(self.target, "HELP", "")
        with VerticalScroll(id="help-body"):
            yield Static(Text(f"{title}: keys", style="bold"), id="help-title")
            if about:
                yield Static(Text(about), id="help-about")  # "[placeholders]" is not markup
            yield Static(table, id="help-table")
            yield Static("Press escape to close.", id="help-footer")
