"""Filmstrip: the first, middle and last frame of a clip, drawn with the best method the
terminal supports (Kitty/Sixel graphics, else coloured half blocks) by textual-image.

Cells are about twice as tall as they are wide, so an image drawn into a box of cells of
another shape stretches (a 480x832 portrait strip in 56x10 cells came out 1.6 times too wide).
The strip is drawn in the largest box of whole cells with its own aspect, and centred in the
space the screen gives it (letterboxed)."""

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


def cell_box(width: int, height: int, max_cols: int, max_rows: int,
             cell: tuple[int, int] = (10, 20)) -> tuple[int, int]:
    """The largest box of whole cells (columns, rows) inside max_cols x max_rows that shows a
    `width` x `height` pixel image at its own aspect, for cells of `cell` pixels (w, h)."""
    if width <= 0 or height <= 0 or max_cols <= 0 or max_rows <= 0:
        return 0, 0
    per_row = (width / cell[0]) / (height / cell[1])  # columns the image needs per row
    rows = max_rows
    cols = round(rows * per_row)
    if cols > max_cols:
        cols = max_cols
        rows = max(1, round(cols / per_row))
    return max(1, cols), rows


def cell_pixels() -> tuple[int, int]:
    """A cell's size in pixels (w, h), as textual-image measured the terminal at start (it
    draws with the same); 10x20 where it could not say."""
    try:
        from textual_image._terminal import get_cell_size  # no public name for it

        cell = get_cell_size()
        return (cell.width, cell.height) if cell.width and cell.height else (10, 20)
    except Exception:  # noqa: BLE001 - a closed stdout, a changed private module
        return 10, 20


class Filmstrip(Container):
    DEFAULT_CSS = """
    Filmstrip { height: 12; align: center middle; }
    Filmstrip > Image { width: auto; height: auto; }
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
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        widget = self.query_one(Image)
        image = widget.image
        if not isinstance(image, PILImage.Image):
            return
        cols, rows = cell_box(image.width, image.height, self.content_size.width,
                              self.content_size.height, cell_pixels())
        if cols and rows:
            widget.styles.width = cols
            widget.styles.height = rows
