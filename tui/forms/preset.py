"""Tag a track from a style preset (audio datasets): the preset's tags in front of the track's
own, its category recorded for the dataset's style balance (`lorad captions preset` does the
same from the CLI). The caption it makes is shown before ctrl+s."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Select

from lorad.captions import presets, versions
from lorad.core.store import transaction
from lorad.media import clips

from .base import FormError, FormScreen, chosen, labelled


class PresetForm(FormScreen):
    TITLE = "Tag from a style preset"
    HINT = "The preset's tags go first, the track's own after them (each once)."
    SUBMIT = "tag the track"

    def __init__(self, clip_id: int, name: str) -> None:
        super().__init__()
        self.clip_id = clip_id
        self.track = name
        self.known: dict[str, presets.Preset] = {}

    def fields(self) -> ComposeResult:
        self.known = presets.load(self.app.config.presets)  # the app's config: yours too
        options = [(f"{p.name}  ({p.category})", p.name) for p in
                   sorted(self.known.values(), key=lambda p: (p.category, p.name))]
        yield from labelled(f"preset for {self.track}", Select(options, id="preset-name"))

    def load(self, conn) -> str:
        now = versions.current(conn, self.clip_id)
        return now.text if now else ""

    def values(self) -> dict[str, Any]:
        name = chosen(self.query_one("#preset-name", Select))
        if name is None:
            raise FormError("choose a preset")
        return {"preset": name}

    def check(self, conn, values) -> Text:
        p = self.known[values["preset"]]
        return Text(presets.apply(self.data or "", p))

    def submit(self, conn, values) -> str:
        p = self.known[values["preset"]]
        with transaction(conn):
            now = versions.current(conn, self.clip_id)
            versions.set_caption(conn, self.clip_id, presets.apply(now.text if now else "", p),
                                 source="template")
            clips.set_track(conn, self.clip_id, preset=p.name, category=p.category)
        return f"{self.track}: tagged from {p.name} ({p.category})"
