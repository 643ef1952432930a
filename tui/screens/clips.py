"""Clips screen: review a dataset's clips from the keyboard, with a filmstrip of the selected one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, ProgressBar, Static

from lorad.core import jobs
from lorad.media import clips, datasets, profiles

from ..keys import keyed
from ..widgets.filmstrip import Filmstrip, load_image
from ..widgets.rowlist import Column, LazyRows, RowList
from .base import DatasetScreen

STATE_STYLE = {"new": "dim", "processing": "cyan", "ready": "", "approved": "green",
               "rejected": "yellow", "error": "bold red"}
FLAG_BADGE = {"duplicate": ("dup", "yellow"), "near_duplicate": ("near-dup", "yellow"),
              "upscaled": ("upscaled", "magenta"), "cropped": ("cropped", "magenta"),
              "letterboxed": ("bars", "magenta"), "vfr": ("vfr", "dim"), "hdr": ("hdr", "dim"),
              "static": ("static", "green"), "slight": ("slight", "green"),
              "moving": ("moving", "cyan"), "panning": ("panning", "red")}
# as the screen narrows, the state, flags and message stay; frames, fps, size and motion go
COLUMNS = [Column("", 1), Column("id", 5, "right", keep=3), Column("name", 16),
           Column("state", 9), Column("frames", 6, "right", keep=4),
           Column("fps", 4, "right", keep=5), Column("size", 9, keep=5),
           Column("motion", 7, keep=4), Column("flags", 12, keep=1),
           Column("message", 20, keep=2, grow=True)]

EMPTY_CLIPS = "no clips: N, Add clips (or `lorad clips add DATASET FOLDER`) ingests a folder"
STATE = clips.ClipRow.FIELDS.index("state")
FIRST_SCREENFUL = 200  # rows of the first read


@dataclass
class ClipsData:
    datasets: list[datasets.Dataset]
    dataset: datasets.Dataset | None
    profile: profiles.Profile | None
    rows: list[clips.ClipRow]
    counts: dict[str, int]
    progress: tuple[int, int]
    detail: clips.Clip | None
    image: object | None  # PIL image of the selected clip's filmstrip
    partial: bool = False  # the first screenful only: the whole list is read next


BADGE_FLAG = {label: flag for flag, (label, _style) in FLAG_BADGE.items()}


def parse_filter(text: str) -> dict:
    """`state:error flag:panning truck` -> states, flag and free text."""
    out: dict = {"states": [], "flag": None, "text": None}
    words = []
    for token in text.split():
        if token.startswith("state:"):
            out["states"].append(token[6:])
        elif token.startswith("flag:"):
            out["flag"] = BADGE_FLAG.get(token[5:], token[5:])  # the badge's text works too
        else:
            words.append(token)
    out["text"] = " ".join(words) or None
    return out


def badges(flags: list[str]) -> Text:
    text = Text()
    for flag in flags:
        if flag in clips.MOTION_CLASSES:
            continue
        label, style = FLAG_BADGE.get(flag, (flag, ""))
        text.append(label, style=style)
        text.append(" ")
    return text


def row_cells(row: clips.ClipRow, marked: bool = False) -> tuple:
    motion = next((f for f in row.flags if f in clips.MOTION_CLASSES), "")
    size = f"{row.width}x{row.height}" if row.width else ""
    return ("•" if marked else " ", str(row.id), row.name,
            Text(row.state, style=STATE_STYLE.get(row.state, "")),
            str(row.frames or ""), f"{row.fps:g}" if row.fps else "", size,
            Text(motion, style=FLAG_BADGE.get(motion, ("", ""))[1]), badges(row.flags),
            row.message)


class ClipsScreen(DatasetScreen):
    LABEL = "Clips"
    HELP = (
        "Review the clips of a dataset. Each source file was converted to the dataset's profile "
        "(size, fps, frame count) by the daemon; flags say what to look at: panning or moving "
        "camera, duplicates, upscaled or cropped sources, black bars. Approve what should train; "
        "rejected clips are kept but never exported. Mark several clips with m to approve or "
        "reject them together. Filter with / using words, state:NAME and flag:NAME. o records "
        "where a clip came from (provider, license, cost, date). In an audio dataset a track "
        "shows its waveform, loudness and quality score, and space plays it with no window."
    )
    BINDINGS = keyed([
        # the footer shows the first four (and ?, N); ? lists them all
        Binding("a", "review('approved')", "Approve"),
        Binding("x", "review('rejected')", "Reject"),
        Binding("space", "play", "Play"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("u", "review('ready')", "Undo review", show=False),
        Binding("m", "mark", "Mark", show=False),
        Binding("M", "mark_all", "Mark all shown", show=False),
        Binding("escape", "clear", "Clear marks/filter", show=False),
        Binding("r", "reprocess", "Reprocess", show=False),
        Binding("e", "next_error", "Next error", show=False),
        Binding("d", "next_dataset", "Next dataset", show=False),
        Binding("o", "source", "Source record (provider, license, cost)", show=False),
    ])

    FILTER_ID = "clips-filter"

    def __init__(self) -> None:
        super().__init__()
        self.current: clips.Clip | None = None
        self.cursor_key: int | None = None  # the clip under the cursor, as last highlighted
        # what the list shows, its cells made on view (None: nothing read yet)
        self.clip_rows: list[clips.ClipRow] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            with Horizontal(id="clips-top"):
                yield Static("", id="clips-summary")
                yield ProgressBar(id="clips-progress", show_eta=False)
            with Horizontal(id="clips-main"):
                table = RowList(COLUMNS, key_of=lambda r: int(r[1]), id="clips-table")
                table.empty_text = EMPTY_CLIPS
                yield table
                with Vertical(id="clips-side"):
                    yield Filmstrip(id="clips-filmstrip")
                    yield Static("", id="clips-detail")
            yield Input(placeholder="filter: words, state:error, flag:panning (enter applies, "
                                    "escape cancels)", id="clips-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#clips-filter", Input).display = False
        self.query_one(RowList).focus()
        self.reload()

    # -- data -------------------------------------------------------------------------------
    def changes(self, conn) -> tuple:
        return datasets.change_mark(conn), clips.change_mark(conn), jobs.change_mark(conn)

    def load(self, conn) -> ClipsData:
        all_sets = datasets.list_all(conn)
        dataset = next((d for d in all_sets if d.name == self.dataset_name),
                       all_sets[0] if all_sets else None)
        if dataset is None:
            return ClipsData(all_sets, None, None, [], {}, (0, 0), None, None)
        f = parse_filter(self.filter_text)
        # the first read paints a screenful at once (100,000 clips take a second to read),
        # then the whole list follows
        first = self.clip_rows is None
        rows = clips.rows(conn, dataset.id, states=f["states"], flag=f["flag"], text=f["text"],
                          limit=FIRST_SCREENFUL if first else None)
        key = self.cursor_key
        detail = None
        image = None
        if key is None and rows:
            key = rows[0].id
        if key is not None:
            try:
                detail = clips.get(conn, key)
            except clips.ClipError:
                detail = None
        if detail and detail.filmstrip_path:
            image = load_image(Path(detail.filmstrip_path))
        try:
            profile = profiles.get(dataset.profile, self.app.ws.config())
        except Exception:  # noqa: BLE001 - a broken config shows in the header, not here
            profile = None
        return ClipsData(all_sets, dataset, profile, rows, clips.counts_by_state(conn, dataset.id),
                         clips.progress(conn, dataset.id), detail, image,
                         partial=first and len(rows) == FIRST_SCREENFUL)

    def show(self, data: ClipsData) -> None:
        table = self.query_one(RowList)
        self.dataset_name = data.dataset.name if data.dataset else None
        self.dataset_names = [d.name for d in data.datasets]
        self.clip_rows = data.rows
        table.set_rows(LazyRows(data.rows, row_cells), keys=[r[0] for r in data.rows])
        if data.partial:
            self.reload()  # the rest of the list
        summary = self.query_one("#clips-summary", Static)
        bar = self.query_one("#clips-progress", ProgressBar)
        if data.dataset is None:
            summary.update("No datasets yet: N opens Setup (New dataset, then Add clips).")
            bar.display = False
        else:
            counts = "  ".join(f"{s} {n}" for s, n in sorted(data.counts.items()))
            shown = f"[{len(data.rows)} shown: {self.filter_text}]  " if self.filter_text else ""
            marked = f"{len(table.marked)} marked  " if table.marked else ""
            profile = data.profile.summary() if data.profile else data.dataset.profile
            # Text, not markup: "[3 shown: state:error]" would vanish as a markup tag. The
            # filter and marks first: on one line at 80 columns the end is cut
            summary.update(Text(f"{shown}{marked}{data.dataset.name} ({profile})  {counts}"))
            table.empty_text = (f"no clip matches the filter {self.filter_text!r}: / changes "
                                "it, escape clears it" if self.filter_text else EMPTY_CLIPS)
            done, total = data.progress
            bar.display = done < total
            bar.update(total=total or 1, progress=done)
        if data.detail is not None and data.detail.id == table.current_key:
            self.show_detail(data.detail, data.image)
        elif table.current_key is None:
            self.show_detail(None, None)

    def show_detail(self, clip: clips.Clip | None, image) -> None:
        self.current = clip
        self.query_one(Filmstrip).show_image(image)
        detail = self.query_one("#clips-detail", Static)
        if clip is None:
            detail.update("")
            return
        lines = [Text(f"{clip.name}  ({clip.state})", style="bold"),
                 Text(clip.source_path, style="dim")]
        if clip.source_range:
            lines.append(Text(f"shot {clip.source_range[0]:.2f}-{clip.source_range[1]:.2f} s"))
        if clip.probe and clip.probe.get("kind") == "audio":  # a music track
            p = clip.probe
            lines.append(Text(f"source: {p['codec']} {p['sample_rate'] / 1000:g} kHz "
                              f"{p['layout'] or str(p['channels']) + ' ch'}"
                              + (f" {p['bit_rate'] // 1000} kbps" if p.get("bit_rate") else "")
                              + f" {p['duration']:.1f} s"))
            a = clip.analysis or {}
            if a:
                lufs = f", {a['lufs']:.1f} LUFS" if a.get("lufs") is not None else ""
                took = ", ".join(f"{k} -{v:g}" for k, v in a.get("penalties", {}).items())
                lines.append(Text(f"track: {clip.duration or 0:.1f} s, peak {a['peak_db']:.1f} "
                                  f"dBFS{lufs}, gain {a['gain_db']:+.1f} dB, clipped "
                                  f"{a['clipped_share']:.2%}, silent {a['silent_share']:.0%}"))
                lines.append(Text(f"quality {a['score']}/100" + (f" ({took})" if took else ""),
                                  style="green" if a["score"] >= 80 else "yellow"))
        elif clip.probe:
            p = clip.probe
            lines.append(Text(f"source: {p['width']}x{p['height']} {p['codec']} "
                              f"{(p['fps'] or 0):.3g} fps {p['duration'] or 0:.1f} s"
                              + (f", rotated {p['rotation']}°" if p["rotation"] else "")
                              + (f", {p['bit_depth']}-bit" if p["bit_depth"] > 8 else "")))
        if clip.frames:
            lines.append(Text(f"clip: {clip.width}x{clip.height}, {clip.frames} frames at "
                              f"{clip.fps:g} fps ({clip.duration or 0:.2f} s)"))
        if clip.analysis and "motion" in clip.analysis:
            a = clip.analysis
            lines.append(Text(f"motion {a['motion']:.2f} ({a['motion_class']}), pan "
                              f"{a['shift']:.2f} px/frame"))
        record = (clip.track or {}).get("source")
        if record:
            lines.append(Text("from " + ", ".join(f"{k} {v}" for k, v in record.items()),
                              style="dim"))
        if clip.flags:
            lines.append(badges(clip.flags))
        if clip.error:
            lines.append(Text(clip.error, style="bold red"))
        if clip.note:
            lines.append(Text(clip.note, style="yellow"))
        detail.update(Text("\n").join(lines))

    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        self.cursor_key = event.key  # for `load`, which runs in a thread: no widget there
        self.load_detail()

    def load_detail(self) -> None:
        key = self.query_one(RowList).current_key
        if key is None:
            self.show_detail(None, None)
            return
        self._load_detail(key)

    @work(thread=True, exclusive=True, group="clip-detail")
    def _load_detail(self, clip_id: int) -> None:
        conn = self.app.ws.connect()
        try:
            clip = clips.get(conn, clip_id)
        except clips.ClipError:
            return
        finally:
            conn.close()
        image = load_image(Path(clip.filmstrip_path)) if clip.filmstrip_path else None
        self.app.call_from_thread(self._show_if_current, clip, image)

    def _show_if_current(self, clip: clips.Clip, image) -> None:
        if self.query_one(RowList).current_key == clip.id:
            self.show_detail(clip, image)

    # -- actions ----------------------------------------------------------------------------
    def action_review(self, state: str) -> None:
        table = self.query_one(RowList)
        ids = table.selected_keys()
        if not ids:
            return
        word = {"approved": "approved", "rejected": "rejected", "ready": "back to review"}[state]

        def apply(conn, ids=ids):
            changed, skipped = clips.set_review(conn, ids, state)
            if skipped:
                raise clips.ClipError(f"{changed} clip(s) {word}; {skipped} skipped: still "
                                      "processing or in error (fix or reprocess them first)")

        self.write(apply, done_message=f"{len(ids)} clip(s) {word}" if len(ids) > 1 else None)
        if len(ids) == 1 and not table.marked:
            table.action_cursor_down()  # review flows down the list
        table.clear_marks()

    def action_mark(self) -> None:
        table = self.query_one(RowList)
        table.toggle_mark()
        table.action_cursor_down()

    def action_mark_all(self) -> None:
        self.query_one(RowList).mark_all()

    def action_clear(self) -> None:
        table = self.query_one(RowList)
        if table.marked:
            table.clear_marks()
        elif self.filter_text:
            self.filter_text = ""
            self.reload()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.close_filter():
            event.stop()

    def action_play(self) -> None:
        clip = self.current
        if clip is None or not clip.media_path:
            self.notify("this clip has no processed media to play", severity="warning")
            return
        self.app.play_media(clip.media_path, clip.name)

    def action_source(self) -> None:
        from ..forms.source import SourceForm

        clip = self.current
        if clip is None:
            return

        def saved(message: str | None) -> None:
            if message:
                self.notify(message)
                self.load_detail()

        self.app.push_screen(SourceForm(clip.id, clip.name), saved)

    def action_reprocess(self) -> None:
        ids = self.query_one(RowList).selected_keys()
        if ids:
            self.write(clips.reprocess, ids, done_message=f"{len(ids)} clip(s) queued again")

    def action_next_error(self) -> None:
        table = self.query_one(RowList)
        listed = self.clip_rows or []
        n = len(listed)
        for step in range(1, n + 1):
            i = (table.cursor + step) % n
            if listed[i][STATE] == "error":
                table.set_cursor(i)
                return
        self.notify("no clip in error")
