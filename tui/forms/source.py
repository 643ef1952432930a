"""Where a track (or clip) came from: provider, license, cost, date, URL (`lorad clips source`
is the same from the CLI). An emptied field is removed from the record."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input

from lorad.media import clips

from .base import FormScreen, labelled, number

FIELDS = (("provider", "provider (suno, a library, your own...)"), ("license", "license"),
          ("cost", "what it cost, in $"), ("date", "date (YYYY-MM-DD)"), ("url", "URL"))


class SourceForm(FormScreen):
    TITLE = "Source record"
    HINT = "Where this came from, kept with it (and with the datasets made of it)."
    SUBMIT = "save"

    def __init__(self, clip_id: int, name: str) -> None:
        super().__init__()
        self.clip_id = clip_id
        self.track = name

    def fields(self) -> ComposeResult:
        for key, label in FIELDS:
            yield from labelled(label, Input(id=f"source-{key}",
                                             type="number" if key == "cost" else "text"))

    def load(self, conn) -> dict[str, Any]:
        return clips.get(conn, self.clip_id).track.get("source", {})

    def fill(self, record: dict[str, Any]) -> None:
        for key, _label in FIELDS:
            value = record.get(key)
            self.query_one(f"#source-{key}", Input).value = "" if value is None else f"{value}"

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, _label in FIELDS:
            text = self.query_one(f"#source-{key}", Input).value.strip()
            out[key] = (number(text, "cost") if key == "cost" else text) or None
        return out

    def submit(self, conn, values) -> str:
        clips.set_track(conn, self.clip_id, source=values)
        return f"{self.track}: source record saved"
