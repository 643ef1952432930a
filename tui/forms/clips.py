"""Add clips: a folder (or file) typed with completion, queued for ingest by the daemon."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.suggester import Suggester
from textual.widgets import Checkbox, Input, Select

from lorad.core import daemon
from lorad.media import clips, datasets, profiles

from .base import FormError, FormScreen, chosen, labelled


def complete_path(typed: str) -> str | None:
    """The first folder or media file that starts with what was typed (folders end with /);
    `~` stands for home as in a shell."""
    if not typed:
        return None
    expanded = os.path.expanduser(typed)
    folder, _, start = expanded.rpartition(os.sep)
    folder = folder or (os.sep if expanded.startswith(os.sep) else ".")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    media = clips.VIDEO_EXT | clips.IMAGE_EXT
    for name in names:
        if not name.startswith(start) or name == start or name.startswith("."):
            continue
        full = os.path.join(folder, name)
        is_dir = os.path.isdir(full)
        if is_dir or Path(name).suffix.lower() in media:
            return typed + name[len(start):] + (os.sep if is_dir else "")
    return None


class PathSuggester(Suggester):
    """Completes paths (right arrow accepts, as in a shell's history); the folder is listed
    in a thread, never on the event loop."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value)


class AddClipsForm(FormScreen):
    TITLE = "Add clips"
    HINT = ("A folder (searched recursively) or a file; new and changed media are queued for "
            "the daemon to convert to the dataset's profile.")
    SUBMIT = "queue them"
    FIRST = "#add-path"

    def fields(self) -> ComposeResult:
        yield from labelled("dataset", Select([], id="add-dataset"))
        yield from labelled("folder or file (→ completes)",
                            Input(id="add-path", suggester=PathSuggester(),
                                  placeholder="~/clips/truck"))
        yield Checkbox("split long videos into shots first", id="add-split", compact=True)

    def load(self, conn) -> list[str]:
        return [d.name for d in datasets.list_all(conn)]

    def fill(self, names) -> None:
        if not names:
            self.query_one("#form-error").update("no datasets yet: create one first (N)")
            return
        box = self.query_one("#add-dataset", Select)
        box.set_options((n, n) for n in names)
        box.value = self.dataset if self.dataset in names else names[0]

    def values(self) -> dict[str, Any]:
        return {"dataset": chosen(self.query_one("#add-dataset", Select)),
                "path": self.query_one("#add-path", Input).value.strip(),
                "split": self.query_one("#add-split", Checkbox).value}

    def check(self, conn, values) -> Text | str:
        path = values["path"]
        if not path:
            return ""
        target = Path(path).expanduser()
        if not target.exists():
            return Text(f"{target} does not exist (yet)", style="yellow")
        if target.is_file():
            return Text(f"one file: {target.name}")
        return Text(f"a folder: {target}")

    def submit(self, conn, values) -> str:
        if values["dataset"] is None:
            raise FormError("no dataset to add to: create one first")
        if not values["path"]:
            raise FormError("type the folder or file to add")
        d = datasets.get(conn, values["dataset"])
        target = Path(values["path"]).expanduser().resolve()
        media = profiles.get(d.profile, self.app.config).media
        report = clips.add(conn, d, [target], split_scenes=values["split"], media=media)
        if report.missing:
            raise FormError(f"not found: {target}")
        if report.empty:
            raise FormError(f"no media files in {target} (looked for "
                            f"{' '.join(sorted(clips.VIDEO_EXT | clips.IMAGE_EXT))})")
        daemon.nudge(self.app.ws)
        message = report.summary(d.name)
        if report.split_failed:
            message += (f"; {len(report.split_failed)} not split again (failed before, "
                        "unchanged): r on their clips tries again")
        if not daemon.status(self.app.ws).running:
            message += "; the daemon is stopped: D starts it"
        return message
