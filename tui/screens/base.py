"""What every lorad screen shares: reloading from the store off the event loop."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.screen import Screen
from textual.worker import get_current_worker

from lorad import store


class StoreScreen(Screen):
    """A screen that shows data from the store.

    Subclasses implement `load(conn)` (runs in a worker thread, returns plain data) and
    `show(data)` (runs on the event loop, updates widgets). `reload()` is called when the store
    changed and when the screen comes back into view; a newer reload replaces an older one.
    """

    LABEL = ""  # the section name, in help and the command palette
    HELP = ""  # one paragraph shown at the top of the help screen

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._reload()

    @work(thread=True, exclusive=True, group="store-read")
    def _reload(self) -> None:
        conn = store.connect(self.app.ws.db_path, migrate=False)
        try:
            data = self.load(conn)
        finally:
            conn.close()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show, data)

    def load(self, conn) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def show(self, data: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @work(thread=True, group="store-write")
    def write(self, fn, *args, done_message: str | None = None) -> None:
        """Run a small user edit (fn(conn, *args)) off the event loop; errors become toasts."""
        conn = store.connect(self.app.ws.db_path, migrate=False)
        try:
            fn(conn, *args)
        except Exception as exc:  # noqa: BLE001 - shown to the user, nothing else stops
            self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        finally:
            conn.close()
        if done_message:
            self.app.call_from_thread(self.notify, done_message)
