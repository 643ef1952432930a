"""Filmstrip: the first, middle and last frame of a clip, drawn with the best method the
terminal supports (Kitty/Sixel graphics, else coloured half blocks) by textual-image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static
from textual_image.widget import Image


def load_image(path: Path) -> PILImage.Image | None:
    """Read a filmstrip in a worker thread (never on the event loop)."""
    try:
        with PILImage.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError):
        return None


class Filmstrip(Container):
    DEFAULT_CSS = """
    Filmstrip { height: 12; }
    Filmstrip > Image { width: auto; height: 12; }
    Filmstrip > Static { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Image(None)
        yield Static("no preview", id="filmstrip-empty")

    def show_image(self, image: PILImage.Image | None) -> None:
        widget = self.query_one(Image)
        widget.image = image
        widget.display = image is not None
        self.query_one("#filmstrip-empty", Static).display = image is None
