"""What every lorad screen shares: reloading from the store off the event loop."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import get_current_worker

from lorad.core import daemon


class StoreScreen(Screen):
    """A screen that shows data from the store.

    Subclasses implement `load(conn)` (runs in a worker thread, returns plain data) and
    `show(data)` (runs on the event loop, updates widgets). `reload()` is called when what the
    screen reads changed (a filter) and when it comes back into view: a newer reload replaces
    an older one. `store_changed()` is called when the store changed: it reads again after the
    read under way, which is shown (with a commit every second and a read of 100,000 clips
    taking longer, replacing reads ran six side by side and showed none).
    """

    _again = False  # the store changed during the read under way: read again after it

    LABEL = ""  # the section name, in help and the command palette
    HELP = ""  # one paragraph shown at the top of the help screen

    def on_screen_resume(self) -> None:
        # shown for the first time, the screen was just mounted and its on_mount read runs: a
        # second read would only compete with it (100,000 clips: twice the wait for the rows)
        if not self.reading():
            self.reload()

    def reading(self) -> bool:
        """A read of this screen is under way (not one a newer read replaced)."""
        return any(w.node is self and w.group == "store-read" and not w.is_finished
                   and not w.is_cancelled for w in self.app.workers)

    _read_mark: Any = None  # `changes()` as of the last read

    def reload(self) -> None:
        self._reload()

    def store_changed(self) -> None:
        if self.reading():
            self._again = True
        else:
            self._reload(only_if_changed=True)

    def changes(self, conn) -> Any:
        """A cheap summary of what `load` reads (None: unknown, always read): a store change
        that leaves it as it was is not read again. (A loss point a second must not make the
        Captions screen read 100,000 captions a second.)"""
        return None

    @work(thread=True, exclusive=True, group="store-read")
    def _reload(self, only_if_changed: bool = False) -> None:
        with self.app.connection() as conn:
            mark = self.changes(conn)  # before the read: a change during it is read next time
            if only_if_changed and mark is not None and mark == self._read_mark:
                return
            data = self.load(conn)
        if not get_current_worker().is_cancelled:
            self._read_mark = mark
            self.app.call_from_thread(self._deliver, data)

    def _deliver(self, data: Any) -> None:
        # A read that finishes while the app shuts down (or the screen is popped) finds the
        # widgets gone: drop it rather than crash the exit.
        if self.app._closing or self._closing or self._closed or not self.is_attached:
            return
        self.show(data)
        if self._again:
            self._again = False
            self._reload(only_if_changed=True)

    def load(self, conn) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def show(self, data: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def confirm_then(self, question: str, label: str, fn, *args,
                     done_message: str | None = None) -> None:
        """Ask before an edit that costs money or stops work; `y` does it (a worker write),
        escape keeps things as they are."""
        from .confirm import ConfirmScreen

        def chosen(key: str | None) -> None:
            if key == "y":
                self.write(fn, *args, done_message=done_message)

        self.app.push_screen(ConfirmScreen(question, {"y": label}), chosen)

    @work(thread=True, group="store-write")
    def write(self, fn, *args, done_message: str | None = None) -> None:
        """Run a small user edit (fn(conn, *args)) off the event loop; errors become toasts."""
        with self.app.connection() as conn:
            try:
                fn(conn, *args)
            except Exception as exc:  # noqa: BLE001 - shown to the user, nothing else stops
                self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
                return
        daemon.nudge(self.app.ws)  # an edit may have queued a job (retry, reprocess)
        if done_message:
            self.app.call_from_thread(self.notify, done_message)


class DatasetScreen(StoreScreen):
    """A screen that shows one dataset at a time (`d` cycles) and filters its rows with an Input
    toggled by `/`. Subclasses set FILTER_ID and keep a RowList as the focus home."""

    FILTER_ID = ""

    def __init__(self) -> None:
        super().__init__()
        self.dataset_name: str | None = None
        self.dataset_names: list[str] = []
        self.filter_text = ""

    def home(self):
        from ..widgets.rowlist import RowList

        return self.query_one(RowList)

    def action_filter(self) -> None:
        box = self.query_one(f"#{self.FILTER_ID}", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        event.input.display = False
        self.home().focus()
        self.reload()

    def close_filter(self) -> bool:
        """Hide the filter box if it has focus; True when it did."""
        box = self.query_one(f"#{self.FILTER_ID}", Input)
        if not box.has_focus:
            return False
        box.display = False
        self.home().focus()
        return True

    def action_next_dataset(self) -> None:
        if len(self.dataset_names) < 2:
            self.notify("only one dataset" if self.dataset_names else "no datasets yet")
            return
        at = self.dataset_names.index(self.dataset_name) if self.dataset_name in \
            self.dataset_names else -1
        self.dataset_name = self.dataset_names[(at + 1) % len(self.dataset_names)]
        self.home().clear_marks()
        self.reload()
