"""RowList: a keyboard list of table rows that stays fast at any size.

The stock DataTable measures every cell after adding rows, which freezes the UI for seconds at
10k+ rows. RowList renders only the visible lines (line API), keeps rows as plain tuples, and
adds what review needs: a cursor that follows a row's key across reloads and a set of marked
rows for bulk actions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..keys import keyed


@dataclass(frozen=True)
class Column:
    """`keep`: which columns stay as the list narrows (0 always; then 1, 2, ...: the larger the
    number, the sooner it goes). `grow`: takes the width left over (a caption, a message)."""

    title: str
    width: int
    align: str = "left"
    keep: int = 0
    grow: bool = False


def fit(columns: Sequence[Column], width: int) -> list[tuple[int, Column]]:
    """The columns shown at `width`, in their order, as (index in the row, column): those kept
    longest that fit (columns of one `keep` level go together), the growing one widened."""
    levels = sorted({c.keep for c in columns})
    shown: set[int] = set()
    for level in levels:
        trial = shown | {i for i, c in enumerate(columns) if c.keep == level}
        if level and sum(columns[i].width + 1 for i in trial) > width:
            break
        shown = trial
    picked = [(i, c) for i, c in enumerate(columns) if i in shown]
    spare = width - sum(c.width + 1 for _i, c in picked)
    if spare > 0:
        picked = [(i, Column(c.title, c.width + spare, c.align, c.keep, c.grow) if c.grow else c)
                  for i, c in picked]
    return picked


class RowList(ScrollView, can_focus=True):
    """Rows are sequences of cells (str or rich Text); `key_of(row)` identifies a row."""

    DEFAULT_CSS = """
    RowList { height: 1fr; }
    RowList > .rowlist--header { text-style: bold; }
    RowList > .rowlist--cursor { background: $accent 40%; }
    RowList:focus > .rowlist--cursor { background: $accent; color: $text; }
    RowList > .rowlist--marked { background: $secondary 35%; text-style: bold; }
    """
    COMPONENT_CLASSES = {"rowlist--header", "rowlist--cursor", "rowlist--marked"}
    BINDINGS = keyed([
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
    ])

    cursor = reactive(0)

    class Highlighted(Message):
        def __init__(self, row_list: RowList, key: Hashable | None) -> None:
            super().__init__()
            self.row_list = row_list
            self.key = key

    def __init__(self, columns: Sequence[Column], key_of: Callable[[Sequence], Hashable], *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.key_of = key_of
        self.rows: list[Sequence] = []
        self.index: dict[Hashable, int] = {}
        self.marked: set[Hashable] = set()
        self.empty_text = "nothing to show"
        self.shown: list[tuple[int, Column]] = list(enumerate(self.columns))

    # -- data -------------------------------------------------------------------------------
    def set_rows(self, rows: list[Sequence]) -> None:
        """Replace all rows; the cursor stays on the same key when it is still there."""
        current = self.current_key
        self.rows = rows
        self.index = {self.key_of(r): i for i, r in enumerate(rows)}
        self.marked &= set(self.index)
        self._resize_content()
        if current in self.index:
            self.set_cursor(self.index[current], notify=False)
        else:
            self.set_cursor(min(self.cursor, max(0, len(rows) - 1)), notify=True)
        self._line_cache_clear()
        self.refresh()

    @property
    def current_key(self) -> Hashable | None:
        if not self.rows or self.cursor >= len(self.rows):
            return None
        return self.key_of(self.rows[self.cursor])

    def selected_keys(self) -> list[Hashable]:
        """Marked rows in display order, or the row under the cursor when nothing is marked."""
        if self.marked:
            return [self.key_of(r) for r in self.rows if self.key_of(r) in self.marked]
        return [] if self.current_key is None else [self.current_key]

    def toggle_mark(self) -> None:
        key = self.current_key
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        self.refresh()

    def mark_all(self) -> None:
        self.marked = set(self.index)
        self.refresh()

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()

    # -- cursor -----------------------------------------------------------------------------
    def set_cursor(self, index: int, *, notify: bool = True) -> None:
        index = max(0, min(index, len(self.rows) - 1)) if self.rows else 0
        changed = index != self.cursor
        self.cursor = index
        self._scroll_to_cursor()
        self.refresh()
        if notify or changed:
            self.post_message(self.Highlighted(self, self.current_key))

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def action_cursor_down(self) -> None:
        self.set_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.set_cursor(self.cursor - 1)

    def action_page_down(self) -> None:
        self.set_cursor(self.cursor + max(1, self.scrollable_content_region.height - 2))

    def action_page_up(self) -> None:
        self.set_cursor(self.cursor - max(1, self.scrollable_content_region.height - 2))

    def action_first(self) -> None:
        self.set_cursor(0)

    def action_last(self) -> None:
        self.set_cursor(len(self.rows) - 1)

    # -- rendering --------------------------------------------------------------------------
    def _resize_content(self) -> None:
        width = self.scrollable_content_region.width
        self.shown = fit(self.columns, width or sum(c.width + 1 for c in self.columns))
        width = sum(c.width + 1 for _i, c in self.shown)
        self.virtual_size = Size(width, len(self.rows) + 1)

    def on_resize(self) -> None:
        self._resize_content()
        self.refresh()

    def _line_cache_clear(self) -> None:
        pass  # strips are cheap to build; kept as the hook for a cache if ever needed

    def _cells(self, cells: Sequence, style: Style) -> list[Segment]:
        segments: list[Segment] = []
        for index, column in self.shown:
            cell = cells[index] if index < len(cells) else ""
            text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
            if text.style:  # a cell's own style as a span, so the row's goes under it
                text.stylize(text.style)
                text.style = ""
            text.no_wrap = True
            text.truncate(column.width, overflow="ellipsis")
            text.align("right" if column.align == "right" else "left", column.width)
            text.append(" ")
            text.stylize_before(style)  # under the cell's own styles: a red state stays red
            segments.extend(text.render(self.app.console))
        return segments

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("rowlist--header")
            strip = Strip(self._cells([c.title for c in self.columns], base + header))
            return strip.crop_extend(int(self.scroll_offset.x), int(self.scroll_offset.x) + width,
                                     base)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.rows):
            if not self.rows and y == 1:
                return Strip([Segment(self.empty_text, base + Style(dim=True))]).crop_extend(
                    0, width, base)
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if self.key_of(row) in self.marked:
            style += self.get_component_rich_style("rowlist--marked")
        if index == self.cursor:
            style += self.get_component_rich_style("rowlist--cursor")
        strip = Strip(self._cells(row, style))
        return strip.crop_extend(int(self.scroll_offset.x), int(self.scroll_offset.x) + width,
                                 style)
