"""RowList: a keyboard list of table rows that stays fast at any size.

The stock DataTable measures every cell after adding rows, which freezes the UI for seconds at
10k+ rows. RowList renders only the visible lines (line API), keeps rows as plain tuples, and
adds what review needs: a cursor that follows a row's key across reloads and a set of marked
rows for bulk actions. A moved cursor repaints the list; the lines whose row and style did not
change come from a cache (building a line's cells is most of a frame's work).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
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


class LazyRows(Sequence):
    """Rows whose cells are made when read, `cells_of(record)`: in practice for the lines on
    screen only. A tuple of rich cells per record made up front cost 100,000 clips seconds on
    the event loop and hundreds of MB; give `set_rows` the keys with it (`keys=`), so listing
    them does not make every row either."""

    def __init__(self, records: Sequence, cells_of: Callable[[Any], Sequence]) -> None:
        self.records = records
        self.cells_of = cells_of

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.cells_of(r) for r in self.records[index]]
        return self.cells_of(self.records[index])


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

    cursor = reactive(0, repaint=False)  # set_cursor repaints what the move changed

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
        self.rows: Sequence[Sequence] = []
        self.keys: list[Hashable] = []  # key_of of each row, in order
        self.index: dict[Hashable, int] = {}
        self.marked: set[Hashable] = set()
        self.empty_text = "nothing to show"
        self.shown: list[tuple[int, Column]] = list(enumerate(self.columns))
        # (row index or -1 for the header, style, scroll x, width) -> Strip; cleared when the
        # rows or the columns shown change (the style is in the key: cursor, marks, focus)
        self._lines: LRUCache[tuple, Strip] = LRUCache(1024)
        self._pass_style: Style | None = None  # the base style, once per render pass

    # -- data -------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[Sequence], keys: Sequence[Hashable] | None = None) -> None:
        """Replace all rows; the cursor stays on the same key when it is still there. `keys`:
        each row's key_of, when the caller has them (LazyRows)."""
        current = self.current_key
        self.rows = rows
        if keys is None:
            keys = [self.key_of(r) for r in rows]
        self.keys = keys if isinstance(keys, list) else list(keys)
        self.index = dict(zip(self.keys, range(len(self.keys)), strict=True))
        self.marked = {k for k in self.marked if k in self.index}
        self._resize_content()
        if current in self.index:
            self.set_cursor(self.index[current], notify=False)
        else:
            self.set_cursor(min(self.cursor, max(0, len(rows) - 1)), notify=True)
        self._line_cache_clear()
        self.refresh()

    @property
    def current_key(self) -> Hashable | None:
        if not self.rows or self.cursor >= len(self.keys):
            return None
        return self.keys[self.cursor]

    def selected_keys(self) -> list[Hashable]:
        """Marked rows in display order, or the row under the cursor when nothing is marked."""
        if self.marked:
            return sorted((k for k in self.marked if k in self.index), key=self.index.__getitem__)
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
        old = self.cursor
        changed = index != old
        self.cursor = index
        top = self.scroll_offset.y
        self._scroll_to_cursor()
        if self.scroll_offset.y != top:
            self.refresh()
        elif changed:  # the two lines whose style changed (row i is virtual line i + 1)
            self.refresh_line(old + 1)
            self.refresh_line(index + 1)
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
        self._line_cache_clear()

    def on_resize(self) -> None:
        self._resize_content()
        self.refresh()

    def _line_cache_clear(self) -> None:
        self._lines.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # a new theme: the styles in the keys would only miss

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

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pass_style = self.rich_style  # the walk up the DOM once, not once per line
        try:
            return super().render_lines(crop)
        finally:
            self._pass_style = None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._pass_style or self.rich_style
        scroll_x = int(self.scroll_offset.x)
        if y == 0:
            header = self.get_component_rich_style("rowlist--header")
            key = (-1, base + header, scroll_x, width)
            strip = self._lines.get(key)
            if strip is None:
                strip = Strip(self._cells([c.title for c in self.columns], base + header))
                strip = self._lines[key] = strip.crop_extend(scroll_x, scroll_x + width, base)
            return strip
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.rows):
            if not self.rows and y == 1:
                return Strip([Segment(self.empty_text, base + Style(dim=True))]).crop_extend(
                    0, width, base)
            return Strip.blank(width, base)
        style = base
        if self.keys[index] in self.marked:
            style += self.get_component_rich_style("rowlist--marked")
        if index == self.cursor:
            style += self.get_component_rich_style("rowlist--cursor")
        key = (index, style, scroll_x, width)
        strip = self._lines.get(key)
        if strip is None:
            strip = Strip(self._cells(self.rows[index], style))
            strip = self._lines[key] = strip.crop_extend(scroll_x, scroll_x + width, style)
        return strip
