"""A run's samples (`S` on the Training screen): the videos and images the trainer made while
it trained, pulled with the run, listed by the checkpoint they were made at (the epoch or step
in their name), newest first; space plays one, escape closes."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keys import keyed
from ..widgets.rowlist import Column, RowList

MEDIA = {".mp4", ".webm", ".mkv", ".png", ".jpg", ".jpeg", ".webp"}
# musubi-tuner names samples {output_name}_{e000004 | 000120}_{prompt:02d}_{stamp}[_{seed}]
MARK = re.compile(r"_(e?)(\d{6})_(\d{2})_\d{8,14}(?:_(\d+))?$")


def sample_rows(folder: Path) -> list[tuple[str, str, str, str]]:
    """(file, made at, prompt, seed) of every sample in `folder`, newest checkpoint first."""
    rows = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix.lower() not in MEDIA:
            continue
        m = MARK.search(path.stem)
        if m:
            at = f"epoch {int(m.group(2))}" if m.group(1) else f"step {int(m.group(2))}"
            key = (int(m.group(2)) * (10**6 if m.group(1) else 1), path.name)
            rows.append((key, (path.name, at, str(int(m.group(3)) + 1), m.group(4) or "-")))
        else:
            rows.append(((-1, path.name), (path.name, "-", "-", "-")))
    return [row for _key, row in sorted(rows, key=lambda r: r[0], reverse=True)]


class SamplesScreen(ModalScreen[None]):
    BINDINGS = keyed([Binding("escape,q,S", "dismiss", "Close"),
                      Binding("space,enter", "play", "Play")])

    def __init__(self, run_name: str, folder: Path) -> None:
        super().__init__()
        self.run_name = run_name
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(id="history-body"):
            yield Static(Text(f"samples of {self.run_name}: space plays, escape closes",
                              style="bold"))
            table = RowList([Column("made at", 11), Column("prompt", 6, keep=1),
                             Column("seed", 8, keep=2), Column("file", 20, keep=3, grow=True)],
                            key_of=lambda r: r[3])
            table.empty_text = "looking..."
            yield table

    def on_mount(self) -> None:
        self.query_one(RowList).focus()
        self._list()

    @work(thread=True, exclusive=True, group="samples")
    def _list(self) -> None:
        rows = sample_rows(self.folder)  # the folder is read off the event loop
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[tuple[str, str, str, str]]) -> None:
        table = self.query_one(RowList)
        table.empty_text = ("no samples: the run samples with sample_every_n_epochs (or _steps) "
                            "and eval prompts; they come down when it ends")
        table.set_rows([(at, prompt, seed, name) for name, at, prompt, seed in rows])

    def action_play(self) -> None:
        key = self.query_one(RowList).current_key
        if key is not None:
            self.app.play_media(str(self.folder / key), f"{self.run_name}: {key}")
