"""`N`: the setup actions in one list (also in the command palette as "Setup: ..."), so a new
dataset, clips, rules, an export, a run or a batch of generations never needs the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..keys import keyed
from .base import FormScreen
from .clips import AddClipsForm
from .dataset import NewDatasetForm, RulesForm
from .export import ExportForm
from .generate import GenerateForm
from .run import NewRunForm


@dataclass(frozen=True)
class SetupAction:
    id: str
    title: str
    form: Callable[[str | None], FormScreen]


ACTIONS: list[SetupAction] = [
    SetupAction("dataset", "New dataset", NewDatasetForm),
    SetupAction("clips", "Add clips from a folder", AddClipsForm),
    SetupAction("rules", "Dataset rules (trigger, template, eval prompts)", RulesForm),
    SetupAction("export", "Export a dataset version", ExportForm),
    SetupAction("run", "Start a training run", NewRunForm),
    SetupAction("generate", "Generate or sweep (priced first)", GenerateForm),
]


class SetupMenu(ModalScreen[str | None]):
    """Dismissed with the id of the action chosen (`daemon` for starting the daemon)."""

    DEFAULT_CSS = """
    SetupMenu { align: center middle; }
    #setup-body { width: 60; max-width: 100%; height: auto; border: round $primary;
                  background: $surface; padding: 0 1; }
    #setup-body OptionList { height: auto; max-height: 12; border: none; }
    """
    BINDINGS = keyed([Binding("escape,q", "dismiss_none", "Close")])

    def __init__(self, daemon_down: bool) -> None:
        super().__init__()
        self.daemon_down = daemon_down

    def compose(self) -> ComposeResult:
        options = [Option(f"{i}  {a.title}", id=a.id) for i, a in enumerate(ACTIONS, 1)]
        if self.daemon_down:
            options.append(Option(f"{len(ACTIONS) + 1}  Start the daemon (it is stopped)",
                                  id="daemon"))
        with Vertical(id="setup-body"):
            yield Static("[b]Setup[/b]  (enter or a digit chooses, escape closes)")
            yield OptionList(*options)

    def on_key(self, event) -> None:
        if event.key.isdigit():
            index = int(event.key) - 1
            box = self.query_one(OptionList)
            if 0 <= index < box.option_count:
                event.stop()
                self.dismiss(box.get_option_at_index(index).id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
