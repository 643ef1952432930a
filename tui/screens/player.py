"""Playing a clip inside the terminal, for the machine without a display (the usual case over
SSH): its frames, decoded small in a worker, drawn with the filmstrip's image method at a few
per second, with a seek bar. space pauses, left/right seek a second, q or escape return."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Static
from textual_image.widget import Image

from lorad.media import player

from ..keys import keyed

BAR = 30


class PlayerScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    PlayerScreen { align: center middle; }
    #player-body { width: auto; min-width: 44; max-width: 100%; height: auto;
                   max-height: 100%; border: round $primary; background: $surface;
                   padding: 0 1; }
    #player-body > Image { width: auto; height: auto; max-height: 16; }
    """
    BINDINGS = keyed([
        Binding("escape,q", "dismiss", "Close"),
        Binding("space", "toggle", "Pause / play"),
        Binding("right,l", "seek(1)", "+1 s"),
        Binding("left,h", "seek(-1)", "-1 s"),
    ])

    def __init__(self, path: str | Path, title: str = "") -> None:
        super().__init__()
        self.path = Path(path)
        self.title_text = title or self.path.name
        self.clip: player.Frames | None = None
        self.index = 0
        self.paused = False
        self.timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="player-body"):
            yield Static(Text(self.title_text, style="bold"), id="player-title")
            yield Image(None)
            yield Static("decoding...", id="player-bar")

    def on_mount(self) -> None:
        self._decode()

    @work(thread=True, exclusive=True, group="player")
    def _decode(self) -> None:
        try:
            clip = player.frames(self.path)
        except Exception as exc:  # noqa: BLE001 - shown where the picture would be
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._start, clip)

    def _failed(self, message: str) -> None:
        self.query_one("#player-bar", Static).update(Text(message, style="red"))

    def _start(self, clip: player.Frames) -> None:
        self.clip = clip
        self._draw()
        if len(clip.images) > 1:
            self.timer = self.set_interval(1 / clip.fps, self._advance)

    def _advance(self) -> None:
        if self.clip and not self.paused:
            self.index = (self.index + 1) % len(self.clip.images)  # loops, as the players do
            self._draw()

    def _draw(self) -> None:
        if not self.clip:
            return
        self.query_one(Image).image = self.clip.images[self.index]
        n = len(self.clip.images)
        at = self.index / self.clip.fps
        filled = round(BAR * (self.index + 1) / n)
        state = "paused" if self.paused else "playing"
        self.query_one("#player-bar", Static).update(Text(
            f"{'█' * filled}{'░' * (BAR - filled)} {at:4.1f}/{self.clip.duration:.1f} s  "
            f"{state}  space pause  ←/→ 1 s  q back"))

    def action_toggle(self) -> None:
        self.paused = not self.paused
        self._draw()

    def action_seek(self, seconds: int) -> None:
        if self.clip:
            step = round(seconds * self.clip.fps)
            self.index = max(0, min(len(self.clip.images) - 1, self.index + step))
            self._draw()
