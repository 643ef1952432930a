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


def binding_rows(screen: Screen) -> list[tuple[str, str, str, bool]]:
    """(keys, description, id, everywhere) for lorad's bindings that apply on the screen: the
    screen's own first, then its list's, then the app's (everywhere); each with every key that
    does it (aliases) and its id (what `[tui.keys]` remaps). Textual's built-in keys (scrolling,
    focus) are left out."""
    keys_of: dict[str, list[str]] = {}
    first: dict[str, tuple[int, object]] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description or not binding.id:
            continue
        keys_of.setdefault(binding.action, []).append(screen.app.get_key_display(binding))
        if binding.action not in first:
            rank = 2 if active.node is screen.app else 0 if active.node is screen else 1
            first[binding.action] = (rank, binding)
    rows = []
    for action, (rank, binding) in sorted(first.items(), key=lambda kv: kv[1][0]):
        aliases = " / ".join(dict.fromkeys(keys_of[action]))
        rows.append((aliases, binding.description, binding.id or "", rank == 2))
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
        table.add_column("id", style="dim")
        first_app = True
        for keys, description, binding_id, everywhere in binding_rows(self.target):
            if everywhere and first_app:
                table.add_row(Text("everywhere", style="bold"), "", "")
                first_app = False
            table.add_row(keys, description, binding_id)
        about = getattr(self.target, "HELP", "")
        with VerticalScroll(id="help-body"):
            yield Static(Text(f"{title}: keys", style="bold"), id="help-title")
            yield Static(table, id="help-table")  # the keys first: what help is opened for
            if about:
                yield Static(Text(about), id="help-about")  # "[placeholders]" is not markup
            yield Static("Remap a key in lorad.toml by its id: [tui] keys = { retake = \"e\" }. "
                         "Press escape to close.", id="help-footer")
