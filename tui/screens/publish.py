"""Publish a checkpoint to the Hugging Face Hub from the Training screen (`P`): a small form
whose answer the Training screen turns into a durable `hf.publish` job."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Select, Static

from lorad.publish import publishers

from ..keys import keyed


@dataclass
class PublishRequest:
    checkpoint_id: int
    repo: str
    name: str
    private: bool
    convert: bool


class PublishScreen(ModalScreen[PublishRequest | None]):
    """Choose the checkpoint (best rated first, else newest), the repo and the options."""

    BINDINGS = keyed([Binding("escape", "dismiss", "Cancel"), Binding("ctrl+s", "publish", "Publish")])

    def __init__(self, checkpoints: list[dict], repo: str = "") -> None:
        super().__init__()
        self.checkpoints = checkpoints  # local ones, the default first
        self.repo = repo

    def compose(self) -> ComposeResult:
        with Vertical(id="publish-body"):
            yield Static("Publish to the Hugging Face Hub", classes="title")
            yield Select([(label(c), c["id"]) for c in self.checkpoints], allow_blank=False,
                         value=self.checkpoints[0]["id"], id="publish-checkpoint")
            yield Input(self.repo, placeholder="owner/name on the Hub", id="publish-repo")
            yield Input(placeholder="LoRA name (default: the checkpoint's)", id="publish-name")
            yield Checkbox("private repo", id="publish-private")
            yield Checkbox("also the converted file (diffusers, ComfyUI, fal)", value=True,
                           id="publish-convert")
            hint = "enter or ctrl+s publishes, escape cancels"
            missing = publishers.get(publishers.DEFAULT).missing_credentials()
            if missing:
                hint = f"{missing}. {hint}"
            yield Static(hint, id="publish-hint")

    def on_mount(self) -> None:
        self.query_one("#publish-repo", Input).focus()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_publish()

    def action_publish(self) -> None:
        repo = self.query_one("#publish-repo", Input).value.strip()
        if not repo:
            self.notify("the repo is owner/name, e.g. you/truck-lora", severity="warning")
            return
        self.dismiss(PublishRequest(
            int(self.query_one("#publish-checkpoint", Select).value), repo,
            self.query_one("#publish-name", Input).value.strip(),
            self.query_one("#publish-private", Checkbox).value,
            self.query_one("#publish-convert", Checkbox).value))


def label(c: dict) -> str:
    rank = c.get("rank")
    rated = f", rated {rank.score:.2f}" if rank is not None and rank.rated else ""
    when = f"epoch {c['epoch']}" if c.get("epoch") is not None else f"step {c.get('step')}"
    return f"{c['name']} ({when}{rated})"
