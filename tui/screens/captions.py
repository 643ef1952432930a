"""Captions screen: write and fix captions clip after clip, with lint as you type.

Browsing: j/k move, enter edits, u goes back one caption version, a/x approve/reject, n jumps to
the next clip with a lint error (then warnings), and enter then opens the editor with the
problem selected (a banned word, a placeholder; the start for a missing trigger); w goes to the
next clip without a caption, h the
history (enter restores a version), space plays. Editing: escape leaves (and saves), ctrl+s
saves and moves to the next clip, ctrl+t inserts the trigger, tab accepts the suggested
phrase (tab again: the next one), ctrl+u clears the caption, ctrl+z / ctrl+y undo and
redo; ctrl+q asks to save.

What the editor holds is kept as a draft while typing (a quit or a crash loses nothing) and
offered back on the next edit. A save over a caption changed elsewhere since the editor opened
it (`lorad captions set` in another terminal) asks which to keep.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static, TextArea
from textual.widgets.text_area import Selection

from lorad.captions import drafts, lint, presets, review, versions
from lorad.captions.review import CaptionRow, suggest
from lorad.core import fmt
from lorad.media import clips, datasets

from ..keys import keyed
from ..widgets.filmstrip import Filmstrip, load_image
from ..widgets.rowlist import Column, LazyRows, RowList
from .base import DatasetScreen
from .confirm import ConfirmScreen

DRAFT_DELAY = 0.5  # s after the last key before the editor's text is kept as a draft


def _short(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


# the caption text stays whatever the width, and takes what is left
COLUMNS = [Column("id", 5, "right", keep=3), Column("name", 16, keep=2),
           Column("state", 9, keep=4), Column("lint", 6), Column("caption", 24, grow=True)]


def same_text_key(text: str) -> str:
    """What lint compares captions by: spaces collapsed, lower case."""
    return " ".join(text.split()).lower()


class SameText:
    """The listed clips by caption (same_text_key): the duplicate check as you type or move
    looks one caption up instead of normalising every caption of the dataset (100,000 clips:
    a quarter of a second per key). Buckets by the key's hash hold the rows themselves, in
    list order (by id, as `clips.captionable` lists them), and are checked against the text."""

    def __init__(self, rows: list[CaptionRow]) -> None:
        self.buckets: dict[int, list[CaptionRow]] = {}
        for r in rows:
            self.buckets.setdefault(hash(same_text_key(r.text)), []).append(r)

    def change(self, row: CaptionRow, old_text: str) -> None:
        """The row's caption was `old_text` (saved here; the reload shows it later)."""
        old = self.buckets.get(hash(same_text_key(old_text)))
        if old is None or not any(r is row for r in old):
            return  # not a listed row
        old[:] = [r for r in old if r is not row]
        same = self.buckets.setdefault(hash(same_text_key(row.text)), [])
        same.append(row)
        same.sort(key=lambda r: r.id)

    def other(self, clip_id: int, text: str) -> int | None:
        """The first listed clip other than this one with this caption."""
        key = same_text_key(text)
        return next((r.id for r in self.buckets.get(hash(key), ())
                     if r.id != clip_id and same_text_key(r.text) == key), None)


DRAFT_MARK = "✎"  # a model's draft no person has reviewed


def caption_cells(r: CaptionRow) -> tuple:
    badge = lint_badge(r.issues)
    if r.is_model_draft:
        badge = Text.assemble((DRAFT_MARK, "bold magenta"), badge)
    return (str(r.id), r.name, r.state, badge,
            " ".join(r.text.split()) or Text("(no caption)", style="dim"))


@dataclass
class CaptionsData:
    dataset: datasets.Dataset | None
    rules: lint.Rules
    rows: list[CaptionRow]
    phrases: Counter = field(default_factory=Counter)
    same: SameText | None = None  # made with the rows, in the worker


def lint_badge(issues: list[lint.Issue]) -> Text:
    errors = sum(i.severity == "error" for i in issues)
    warnings = len(issues) - errors
    if errors:
        return Text(f"✗{errors}" + (f" !{warnings}" if warnings else ""), style="bold red")
    if warnings:
        return Text(f"!{warnings}", style="yellow")
    return Text("✓", style="green")


class HistoryScreen(ModalScreen[str | None]):
    """Every version of one clip's caption, newest first; enter restores the one under the
    cursor (as a new version: nothing is lost), escape closes."""

    BINDINGS = keyed([Binding("escape,q,h", "dismiss_none", "Close"),
                Binding("enter", "restore", "Restore this version")])

    def __init__(self, name: str, versions: list[versions.CaptionVersion]) -> None:
        super().__init__()
        self.clip_name = name
        self.versions = list(reversed(versions))

    def compose(self) -> ComposeResult:
        import datetime

        with Vertical(id="history-body"):
            yield Static(Text(f"caption history of {self.clip_name}: enter restores, escape "
                              "closes", style="bold"))
            table = RowList([Column("version", 8), Column("when", 16, keep=2),
                             Column("source", 8, keep=1), Column("caption", 30, grow=True)],
                            key_of=lambda r: r[0], id="history-table")
            table.empty_text = "no caption yet"
            table.set_rows([(f"v{v.id}", datetime.datetime.fromtimestamp(v.created_at)
                             .strftime("%Y-%m-%d %H:%M"), v.source, v.text or "(empty)")
                            for v in self.versions])
            yield table

    def on_mount(self) -> None:
        self.query_one(RowList).focus()

    def action_restore(self) -> None:
        table = self.query_one(RowList)
        if self.versions and table.current_key is not None:
            self.dismiss(self.versions[table.cursor].text)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class CaptionEditor(TextArea):
    """TextArea's own keys work too: ctrl+z undo, ctrl+y redo."""

    BINDINGS = keyed([Binding("tab", "complete", "Accept suggestion", show=False),
                Binding("ctrl+u", "clear_caption", "Clear the caption", show=False)])

    def action_complete(self) -> None:
        self.screen.accept_suggestion()

    def action_clear_caption(self) -> None:
        """The whole caption, not one wrapped line (an edit: ctrl+z brings it back)."""
        self.select_all()
        self.replace("", *self.selection)


class CaptionsScreen(DatasetScreen):
    LABEL = "Captions"
    HELP = (
        "Write a caption for every clip. Each save is a new version (nothing is overwritten; "
        "u goes back one version). Lint checks the dataset's rules as you type: trigger token, "
        "unfilled [placeholders], length, banned words, words from the negative prompt, "
        "captions identical to another clip's. Errors block export. Suggestions come from "
        "phrases already used in this dataset; tab accepts the first. Unsaved text is kept "
        "as a draft and offered back; a caption changed elsewhere while you edit it is not "
        "overwritten without asking. Captions a model drafted (`lorad captions draft`) carry "
        f"{DRAFT_MARK} until a person saves them or accepts them as they are with y (which "
        "goes on to the next draft); / source:draft lists them, and export refuses them "
        "until then. In an audio dataset the caption is the track's tag prompt ('lofi, "
        "mellow, piano, 70 bpm'): tags of the style presets complete as you type, t tags the "
        "track from a preset, and L edits its lyrics."
    )
    # The footer shows the first keys: while editing the editing ones (the others are off
    # then), else the review ones; ? lists them all.
    BINDINGS = keyed([
        Binding("ctrl+s", "save_next", "Save and next", priority=True),
        Binding("escape", "leave", "Leave edit (saves)"),
        Binding("ctrl+t", "insert_trigger", "Insert trigger", priority=True),
        Binding("enter", "edit", "Edit"),
        Binding("a", "review('approved')", "Approve"),
        Binding("n", "next_lint", "Next problem"),
        Binding("y", "accept_draft", "Accept draft"),
        Binding("slash", "filter", "Filter", key_display="/", show=False),
        Binding("x", "review('rejected')", "Reject", show=False),
        Binding("u", "undo_version", "Undo version", show=False),
        Binding("h", "history", "History", show=False),
        Binding("w", "next_uncaptioned", "Next uncaptioned", show=False),
        Binding("d", "next_dataset", "Next dataset", show=False),
        Binding("space", "play", "Play", show=False),
        Binding("L", "lyrics", "Lyrics (audio)", show=False),
        Binding("t", "preset", "Tag from a preset (audio)", show=False),
    ])

    FILTER_ID = "captions-filter"

    def __init__(self) -> None:
        super().__init__()
        self.data: CaptionsData | None = None
        self.by_id: dict[int, CaptionRow] = {}
        self.same = SameText([])
        self.editing_id: int | None = None
        self.editing_base: int | None = None  # the caption version the editor opened
        self.draft_timer: Timer | None = None
        self.cycle: dict | None = None  # the suggestion tab put in, while tab may swap it
        self.editor_text = ""  # what the editor holds, readable after its widget is gone
        self.suggestions: list[str] = []
        self.lint_target: int | None = None  # the clip `n` went to: enter selects its problem

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="captions-summary")
            with Horizontal(id="captions-main"):
                table = RowList(COLUMNS, key_of=lambda r: int(r[0]), id="captions-table")
                table.empty_text = "no clips in this dataset yet"
                yield table
                with Vertical(id="captions-side"):
                    yield Filmstrip(id="captions-filmstrip")
                    yield Static("", id="captions-facts")
                    yield CaptionEditor("", id="captions-editor", soft_wrap=True,
                                        show_line_numbers=False)
                    yield Static("", id="captions-suggest")
                    yield Static("", id="captions-lint")
            yield Input(placeholder="filter: words, state:approved, lint:error, uncaptioned, "
                                    "source:draft",
                        id="captions-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#captions-filter", Input).display = False
        self.query_one(CaptionEditor).read_only = True
        self.query_one(RowList).focus()
        self.reload()

    # -- data -------------------------------------------------------------------------------
    def changes(self, conn) -> tuple:
        return (datasets.change_mark(conn), clips.change_mark(conn),
                versions.change_mark(conn), drafts.change_mark(conn))

    def load(self, conn) -> CaptionsData:
        all_sets = datasets.list_all(conn)
        self.dataset_names = [d.name for d in all_sets]
        dataset = next((d for d in all_sets if d.name == self.dataset_name),
                       all_sets[0] if all_sets else None)
        if dataset is None:
            return CaptionsData(None, lint.Rules(), [])
        view = review.dataset_captions(conn, dataset)
        rows = self._filtered(view.rows)
        phrases = view.phrases
        if dataset.profile in self.audio_profiles():  # the taxonomy's tags complete too
            for tag in presets.all_tags(presets.load(self.app.config.presets)):
                phrases.setdefault(tag, 0)
        return CaptionsData(dataset, view.rules, rows, phrases, SameText(rows))

    def audio_profiles(self) -> set[str]:
        from lorad.media import profiles

        return {name for name, p in profiles.all_profiles(self.app.config).items()
                if p.media == "audio"}

    def _filtered(self, rows: list[CaptionRow]) -> list[CaptionRow]:
        words = []
        for token in self.filter_text.split():
            if token.startswith("state:"):
                rows = [r for r in rows if r.state == token[6:]]
            elif token == "lint:error":
                rows = [r for r in rows if r.has_error]
            elif token == "lint:warning":
                rows = [r for r in rows if r.issues]
            elif token == "uncaptioned":
                rows = [r for r in rows if not r.text.strip()]
            elif token.startswith("source:"):
                wanted = token[7:]
                rows = [r for r in rows if r.source and (
                    r.source == wanted or wanted == "draft" and r.is_model_draft)]
            else:
                words.append(token.lower())
        if words:
            rows = [r for r in rows if all(w in (r.text + " " + r.name).lower() for w in words)]
        return rows

    def show(self, data: CaptionsData) -> None:
        self.data = data
        self.dataset_name = data.dataset.name if data.dataset else None
        self.by_id = {r.id: r for r in data.rows}
        self.same = data.same or SameText(data.rows)
        table = self.query_one(RowList)
        table.set_rows(LazyRows(data.rows, caption_cells), keys=[r.id for r in data.rows])
        summary = self.query_one("#captions-summary", Static)
        if data.dataset is None:
            summary.update("No datasets yet: N opens Setup (New dataset, then Add clips).")
        else:
            total = len(data.rows)
            done = sum(1 for r in data.rows if r.text.strip())
            errors = sum(1 for r in data.rows if r.has_error)
            trig = f"trigger {data.rules.trigger}" if data.rules.trigger else "no trigger set"
            shown = f"  [filter: {self.filter_text}]" if self.filter_text else ""
            drafted = sum(1 for r in data.rows if r.is_model_draft)
            review = f", {drafted} draft{'s' if drafted != 1 else ''} to review (y)" \
                if drafted else ""
            summary.update(Text(f"{data.dataset.name}: {done}/{total} captioned{review}, "
                                f"{errors} with lint errors, {trig}{shown}"))  # Text: no markup
        table.empty_text = (f"no clip matches the filter {self.filter_text!r}: / changes it, "
                            "escape clears it" if self.filter_text else
                            "no clips in this dataset yet")
        if self.editing_id is None:
            self.show_current()

    def current_row(self) -> CaptionRow | None:
        key = self.query_one(RowList).current_key
        return self.by_id.get(key) if key is not None else None

    def show_current(self) -> None:
        row = self.current_row()
        editor = self.query_one(CaptionEditor)
        facts = self.query_one("#captions-facts", Static)
        if row is None:
            editor.load_text("")
            facts.update("")
            self.query_one(Filmstrip).show_image(None)
            self.update_lint("")
            return
        if editor.text != row.text:
            editor.load_text(row.text)
        facts.update(Text.assemble((row.name, "bold"), f"  {row.state}  {row.facts}"))
        if row.is_model_draft:
            facts.update(Text.assemble(
                (row.name, "bold"), f"  {row.state}  {row.facts}\n",
                (f"{DRAFT_MARK} drafted by {row.source.removeprefix('draft:')}: y accepts it as "
                 "it is, enter edits it", "magenta")))
        self.update_lint(row.text)
        self._load_image(row.id, row.filmstrip)

    @work(thread=True, exclusive=True, group="caption-image")
    def _load_image(self, clip_id: int, path: str | None) -> None:
        image = load_image(Path(path)) if path else None
        self.app.call_from_thread(self._show_image, clip_id, image)

    def _show_image(self, clip_id: int, image) -> None:
        if self.query_one(RowList).current_key == clip_id:
            self.query_one(Filmstrip).show_image(image)

    def on_row_list_highlighted(self, _event: RowList.Highlighted) -> None:
        if self.editing_id is None:
            self.show_current()

    # -- lint and suggestions as you type ---------------------------------------------------
    def update_lint(self, text: str) -> None:
        rules = self.data.rules if self.data else lint.Rules()
        row = self.current_row()
        dup = None
        if row is not None and text.strip():
            dup = self.same.other(row.id, text)
        issues = lint.lint(text, rules, duplicate_of=dup)
        panel = self.query_one("#captions-lint", Static)
        if not issues:
            panel.update(Text("✓ no lint issues", style="green"))
        else:
            panel.update(Text("\n").join(
                Text(("✗ " if i.severity == "error" else "! ") + i.message,
                     style="red" if i.severity == "error" else "yellow") for i in issues))
        self.current_issues = issues

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.editing_id is None:
            return
        text = self.editor_text = event.text_area.text
        self.update_lint(text)
        cycling = self.cycle is not None and event.text_area.cursor_location == self.cycle["at"]
        if not cycling:  # a key of the person's own: suggest afresh
            self.cycle = None
            row, col = event.text_area.cursor_location
            before = text.splitlines()[row][:col] if text else ""
            segment = re.split(r"[,\n]", before)[-1] if before else ""
            self.suggestions = suggest(segment, self.data.phrases if self.data else Counter(),
                                       limit=5)
            self.suggest_prefix = segment.lstrip()
        self._show_suggestions()
        if self.draft_timer is not None:
            self.draft_timer.stop()
        self.draft_timer = self.set_timer(DRAFT_DELAY, self._keep_draft)

    def _keep_draft(self) -> None:
        """Write what the editor holds (off the event loop), a moment after the last key."""
        if self.editing_id is None:
            return
        text = self.query_one(CaptionEditor).text
        row = self.by_id.get(self.editing_id)
        if row is not None and text.strip() != row.text.strip():
            self.write(drafts.keep, self.editing_id, text, self.editing_base)

    def _show_suggestions(self) -> None:
        chosen = self.cycle["index"] if self.cycle else -1
        text = Text("tab: ", style="dim")
        for n, phrase in enumerate(self.suggestions):
            if n:
                text.append("  |  ", style="dim")
            text.append(phrase, style="bold reverse" if n == chosen else "dim")
        self.query_one("#captions-suggest", Static).update(text if self.suggestions else "")

    def accept_suggestion(self) -> None:
        """tab puts in the first suggestion; tab again right after swaps it for the next one
        (up to five), as shells cycle completions."""
        if not self.suggestions or self.editing_id is None:
            return
        editor = self.query_one(CaptionEditor)
        if self.cycle is not None and editor.cursor_location == self.cycle["at"]:
            index = (self.cycle["index"] + 1) % len(self.suggestions)
            start = self.cycle["start"]
        else:
            index, start = 0, editor.cursor_location
        rest = self.suggestions[index][len(self.suggest_prefix):]
        result = editor.replace(rest, start, editor.cursor_location)
        self.cycle = {"index": index, "start": start, "at": result.end_location}
        self._show_suggestions()

    # -- editing ----------------------------------------------------------------------------
    def action_edit(self) -> None:
        row = self.current_row()
        if row is None:
            return
        draft = row.draft
        if draft is None or draft.text.strip() == row.text.strip():
            self._begin_edit(row)
            return
        question = (f"{row.name} has an unsaved draft ({fmt.age(draft.updated_at)} old):\n"
                    f"  {_short(draft.text)}\nSaved caption:\n  {_short(row.text) or '(none)'}")

        def chosen(key: str | None) -> None:
            if key == "r":
                self._begin_edit(row, draft)
            elif key == "d":
                row.draft = None
                self.write(drafts.discard, row.id, done_message="draft discarded")
                self._begin_edit(row)

        self.app.push_screen(ConfirmScreen(question, {"r": "restore the draft",
                                                      "d": "discard it"}), chosen)

    # Below this many rows the filmstrip steps aside while a caption is edited: the editor,
    # its suggestions and its lint must all be in sight (at 80x24 the lint was below the fold).
    ROOM_FOR_FILMSTRIP_WHILE_EDITING = 32

    def _begin_edit(self, row: CaptionRow, draft: drafts.Draft | None = None) -> None:
        self.editing_id = row.id
        self.refresh_bindings()  # the footer: the editing keys now
        if self.size.height < self.ROOM_FOR_FILMSTRIP_WHILE_EDITING:
            self.query_one(Filmstrip).display = False
        self.editing_base = draft.base_id if draft else row.version_id
        editor = self.query_one(CaptionEditor)
        if draft is not None:
            editor.load_text(draft.text)
        self.editor_text = editor.text
        editor.read_only = False
        editor.focus()
        problem = None
        if draft is None and self.lint_target == row.id:
            problem = lint.first_problem(lint.lint(editor.text, self.data.rules if self.data
                                                   else lint.Rules()))
        if problem is None:
            editor.move_cursor(editor.document.end)
            return
        start, end = (editor.document.get_location_from_index(i) for i in problem.span)
        editor.selection = Selection(start, end)  # typing replaces it; the cursor at its end
        self.notify(problem.message, severity="error" if problem.severity == "error"
                    else "warning")

    def _save(self) -> None:
        if self.editing_id is None:
            return
        if self.draft_timer is not None:
            self.draft_timer.stop()
        text = self.query_one(CaptionEditor).text
        clip_id = self.editing_id
        row = self.by_id.get(clip_id)
        if row is None:
            return
        if text.strip() != row.text.strip():
            old, row.text = row.text, text.strip()  # shown at once; the store write follows
            self.same.change(row, old)
            row.draft = None
            self._commit(clip_id, text, self.editing_base)
        elif row.draft is not None:  # a restored draft put back as it was: nothing to keep
            row.draft = None
            self.write(drafts.discard, clip_id)

    @work(thread=True, group="store-write")
    def _commit(self, clip_id: int, text: str, expected: int | None) -> None:
        with self.app.connection() as conn:
            try:
                version = drafts.save(conn, clip_id, text, expected)
            except versions.CaptionConflict as exc:
                self.app.call_from_thread(self._conflict, clip_id, text, exc.theirs)
                return
            except Exception as exc:  # noqa: BLE001 - shown to the user; the draft is kept
                drafts.keep(conn, clip_id, text, expected)
                self.app.call_from_thread(self.notify, f"{exc} (your text is kept as a draft)",
                                          severity="error", timeout=8)
                return
        self.app.call_from_thread(self._saved, clip_id, version)

    def _saved(self, clip_id: int, version: int | None) -> None:
        row = self.by_id.get(clip_id)
        if row is not None and version is not None:
            row.version_id = version

    def _conflict(self, clip_id: int, mine: str,
                  theirs: versions.CaptionVersion | None) -> None:
        """Saving would replace a change made elsewhere: ask. Either way nothing is lost."""
        row = self.by_id.get(clip_id)
        name = row.name if row else f"clip {clip_id}"
        question = (f"{name}'s caption was changed elsewhere while you edited it.\nTheirs:\n"
                    f"  {_short(theirs.text if theirs else '') or '(none)'}\nYours:\n"
                    f"  {_short(mine)}")
        theirs_id = theirs.id if theirs else None

        def chosen(key: str | None) -> None:
            if key == "m":
                self._commit(clip_id, mine, theirs_id)
            else:
                self.write(drafts.keep, clip_id, mine, theirs_id,
                           done_message="kept theirs; yours is a draft (enter offers it back)")
            self.reload()

        self.app.push_screen(ConfirmScreen(question, {
            "m": "save mine (theirs stays in history)",
            "t": "keep theirs (mine stays a draft)"}), chosen)

    def unsaved(self) -> bool:
        """Editing, with text that differs from the saved caption."""
        if self.editing_id is None:
            return False
        row = self.by_id.get(self.editing_id)
        return row is not None and self.editor_text.strip() != row.text.strip()

    def save_now(self) -> None:
        """Save what the editor holds, in this thread (the app is about to close)."""
        row = self.by_id.get(self.editing_id) if self.editing_id is not None else None
        if row is None:
            return
        with self.app.connection() as conn:
            try:
                drafts.save(conn, row.id, self.editor_text, self.editing_base)
                old, row.text = row.text, self.editor_text.strip()
                self.same.change(row, old)
            except versions.CaptionConflict:
                drafts.keep(conn, row.id, self.editor_text, self.editing_base)  # asked next

    def on_unmount(self) -> None:
        """A quit while editing: keep the text (a short write, as the app closes)."""
        if self.editing_id is None:
            return
        text = self.editor_text
        row = self.by_id.get(self.editing_id)
        if row is not None and text.strip() != row.text.strip():
            with self.app.connection() as conn:
                drafts.keep(conn, self.editing_id, text, self.editing_base)

    def action_leave(self) -> None:
        if self.close_filter():
            return
        if self.editing_id is None:
            if self.filter_text:
                self.filter_text = ""
                self.reload()
            return
        self._save()
        self._stop_editing()

    def _stop_editing(self) -> None:
        self.editing_id = None
        self.refresh_bindings()
        self.query_one(Filmstrip).display = True
        editor = self.query_one(CaptionEditor)
        editor.read_only = True
        self.query_one("#captions-suggest", Static).update("")
        self.query_one(RowList).focus()

    def action_save_next(self) -> None:
        editing = self.editing_id is not None
        self._save()
        self._stop_editing()
        self.query_one(RowList).action_cursor_down()
        self.show_current()
        if editing:
            self.action_edit()

    def action_insert_trigger(self) -> None:
        trigger = self.data.rules.trigger if self.data else None
        if not trigger:
            self.notify("this dataset has no trigger: `lorad dataset rules NAME --trigger TOKEN`",
                        severity="warning")
            return
        if self.editing_id is None:
            self.action_edit()
        editor = self.query_one(CaptionEditor)
        if trigger in editor.text:
            self.notify(f"the trigger {trigger} is already in this caption")
            return
        editor.move_cursor((0, 0))
        editor.insert(f"{trigger}, ")

    def action_undo_version(self) -> None:
        row = self.current_row()
        if row is not None and self.editing_id is None:
            self.write(versions.undo, row.id, done_message="went back one caption version")

    def action_history(self) -> None:
        row = self.current_row()
        if row is not None:
            self._load_history(row.id, row.name)

    @work(thread=True, exclusive=True, group="caption-history")
    def _load_history(self, clip_id: int, name: str) -> None:
        conn = self.app.ws.connect()
        try:
            past = versions.history(conn, clip_id)
        finally:
            conn.close()
        self.app.call_from_thread(self._show_history, clip_id, name, past)

    def _show_history(self, clip_id: int, name: str, past) -> None:
        def restored(text: str | None) -> None:
            if text is not None:
                self.write(versions.set_caption, clip_id, text,
                           done_message=f"{name}: that version is the caption again")

        self.app.push_screen(HistoryScreen(name, past), restored)

    def action_preset(self) -> None:
        """A style preset's tags in front of the track's own (audio datasets)."""
        from ..forms.preset import PresetForm

        row = self.current_row()
        if row is None or self.editing_id is not None:
            return

        def done(message: str | None) -> None:
            if message:
                self.notify(message)
                self.reload()

        self.app.push_screen(PresetForm(row.id, row.name), done)

    def action_lyrics(self) -> None:
        """A track's lyrics beside its tag prompt (the caption)."""
        from ..forms.lyrics import LyricsForm

        row = self.current_row()
        if row is None or self.editing_id is not None:
            return

        def saved(message: str | None) -> None:
            if message:
                self.notify(message)

        self.app.push_screen(LyricsForm(row.id, row.name), saved)

    def action_play(self) -> None:
        row = self.current_row()
        if row is None:
            return
        self._play(row.id, row.name)

    @work(thread=True, exclusive=True, group="caption-play")
    def _play(self, clip_id: int, name: str) -> None:
        with self.app.connection() as conn:
            media = clips.get(conn, clip_id).media_path
        if not media:
            self.app.call_from_thread(self.notify, "this clip has no processed media to play",
                                      severity="warning")
            return
        self.app.call_from_thread(self.app.play_media, media, name)

    def action_review(self, state: str) -> None:
        row = self.current_row()
        if row is None or self.editing_id is not None:
            return
        self.write(clips.set_review, [row.id], state)
        self.query_one(RowList).action_cursor_down()

    def _jump(self, predicate) -> None:
        table = self.query_one(RowList)
        rows = self.data.rows if self.data else []
        n = len(rows)
        for step in range(1, n + 1):
            i = (table.cursor + step) % n
            if predicate(rows[i]):
                table.set_cursor(i)
                return
        self.notify("none left")

    def action_next_lint(self) -> None:
        """The next clip with a lint error, else with a warning (banned words, duplicates)."""
        rows = self.data.rows if self.data else []
        if any(r.has_error for r in rows):
            self._jump(lambda r: r.has_error)
        else:
            self._jump(lambda r: bool(r.issues))
        self.lint_target = self.query_one(RowList).current_key

    def action_accept_draft(self) -> None:
        """y: the model's draft is good as it is; a person's review is recorded (a version
        `accepted`) and the cursor goes on to the next draft."""
        row = self.current_row()
        if row is None or self.editing_id is not None:
            return
        if not row.is_model_draft:
            self.notify("this caption is no draft to accept (y accepts what a model drafted)")
            return
        self.write(versions.accept, row.id)
        row.source = "accepted"  # shown at once; the reload confirms it
        self._jump(lambda r: r.is_model_draft and r.id != row.id)

    def action_next_uncaptioned(self) -> None:
        self._jump(lambda r: not r.text.strip())

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        editing = self.editing_id is not None
        if editing and action in ("edit", "undo_version", "history", "review", "next_lint",
                                  "next_uncaptioned", "filter", "next_dataset", "play",
                                  "accept_draft"):
            return False  # keys type into the caption while editing
        if not editing and action in ("save_next", "insert_trigger"):
            return False  # nothing to save or insert into: off the footer too
        if not editing and action == "leave":  # escape still closes a filter
            return bool(self.filter_text) or self.query_one("#captions-filter").has_focus
        return True
