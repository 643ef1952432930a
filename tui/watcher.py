"""StoreWatcher: one thread that notices database and daemon changes and tells the app.

`PRAGMA data_version` changes whenever another connection commits and costs microseconds, so the
thread polls it a few times a second instead of re-running queries; screens re-read only when it
moved. The daemon's liveness is its workspace lock, checked about once a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from textual.message import Message

from lorad.core import daemon, store
from lorad.core.workspace import Workspace


@dataclass
class StoreChanged(Message):
    version: int


@dataclass
class DaemonChanged(Message):
    status: daemon.DaemonStatus


class StoreWatcher:
    def __init__(self, ws: Workspace, target, interval: float = 0.25):
        self.ws = ws
        self.target = target  # anything with post_message (the App)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lorad-store-watcher", daemon=True)
        self._conn = None
        self._version: int | None = None

    def start(self) -> None:
        # the store's version now, before the first screen reads it (its read starts after the
        # app's on_mount returns): a commit after this is told, one before it is in that read.
        # Telling the first version too made the first screen read everything twice at start.
        self._conn = store.connect(self.ws.db_path, migrate=False)
        self._version = store.data_version(self._conn)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        conn = self._conn
        last_version = self._version
        last_daemon = None
        next_daemon_check = 0.0
        try:
            while not self._stop.is_set():
                version = store.data_version(conn)
                if version != last_version:
                    last_version = version
                    self.target.post_message(StoreChanged(version))
                now = time.monotonic()
                if now >= next_daemon_check:
                    next_daemon_check = now + 1.0
                    status = daemon.status(self.ws)
                    if (status.running, status.pid) != last_daemon:
                        last_daemon = (status.running, status.pid)
                        self.target.post_message(DaemonChanged(status))
                self._stop.wait(self.interval)
        finally:
            conn.close()
