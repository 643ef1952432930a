"""A loopback receiver for lorad's notifications: apprise's `json://` service posts each one
here as JSON (apprise/plugins/custom_json.py: {"version", "title", "message", "type",
"attachments"}), the way a webhook behind ntfy, Slack or Discord would receive it."""

from __future__ import annotations

import json
import threading

import loopback


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(loopback.Handler):
            def _serve(self) -> None:
                body = self.read_body()
                with receiver.lock:
                    receiver.received.append({"path": self.path, **json.loads(body or b"{}")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = loopback.Server(Handler, "notify-receiver")
        self.url = "json://" + self._server.url.removeprefix("http://") + "/hook"

    def start_server(self) -> None:
        self._server.start()

    def stop_server(self) -> None:
        self._server.stop()

    def titles(self) -> list[str]:
        with self.lock:
            return [r.get("title", "") for r in self.received]
