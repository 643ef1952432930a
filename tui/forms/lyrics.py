"""A track's lyrics (audio datasets): edited in a text area, the part markers checked as you
type, saved as a new version with ctrl+s (`lorad captions lyrics` is the same from the CLI)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import TextArea

from lorad.captions import lyrics

from .base import FormScreen, labelled


class LyricsForm(FormScreen):
    TITLE = "Lyrics"
    HINT = ("What the track sings, parts on lines of their own: [verse], [chorus], [bridge]... "
            "Empty or [Instrumental]: no vocals.")
    SUBMIT = "save"

    def __init__(self, clip_id: int, name: str) -> None:
        super().__init__()
        self.clip_id = clip_id
        self.track = name

    def fields(self) -> ComposeResult:
        yield from labelled(f"lyrics of {self.track}", TextArea(id="lyrics-text"))

    def load(self, conn) -> str:
        return lyrics.text_of(conn, self.clip_id)

    def fill(self, text: str) -> None:
        self.query_one("#lyrics-text", TextArea).text = text

    def values(self) -> dict[str, Any]:
        return {"text": self.query_one("#lyrics-text", TextArea).text}

    def check(self, conn, values) -> Text | str:
        found = lyrics.problems(values["text"])
        if not found:
            return Text("the part markers are ones ACE-Step knows", style="green")
        return Text("\n".join(found), style="yellow")

    def submit(self, conn, values) -> str:
        text = values["text"].strip()
        saved = lyrics.set_lyrics(conn, self.clip_id, "" if text == lyrics.INSTRUMENTAL
                                  else text)
        return f"{self.track}: lyrics saved" if saved else f"{self.track}: lyrics unchanged"
