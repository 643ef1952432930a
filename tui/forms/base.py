"""What every setup form shares: fields top to bottom, a live note (a price, a preflight, what
the trainer makes of the options), what is wrong in red, ctrl+s to do it, escape to leave.

A form reads the store in a worker (`load(conn)` -> plain data, `fill(data)` on the event loop),
re-checks what the fields say in a worker as they change (`check(conn, values)` -> the note),
and does its work in a worker (`submit(conn, values)` -> what to tell the person). Only one
submit runs at a time and a form that submitted closes: a paid request cannot go out twice from
one form.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, TextArea
from textual.worker import get_current_worker

from lorad.core.errors import LoradError
from lorad.media import datasets

from ..keys import keyed


class FormError(LoradError):
    """A field that does not parse (said next to nothing else: the form stays open)."""


def labelled(label: str, widget: Widget) -> ComposeResult:
    """A field under its label, one line high (compact): 80x24 holds a whole form."""
    if hasattr(widget, "compact"):
        widget.compact = True
    yield Label(label, classes="form-label")
    yield widget


def number(text: str, what: str, *, kind=float, allow_empty: bool = True) -> Any:
    text = text.strip()
    if not text:
        if allow_empty:
            return None
        raise FormError(f"{what} is required")
    try:
        return kind(text)
    except ValueError:
        raise FormError(f"{what}: {text!r} is not a {'whole ' if kind is int else ''}number"
                        ) from None


def words(text: str) -> list[str]:
    """A comma-separated field as a list (blank items dropped)."""
    return [w.strip() for w in text.split(",") if w.strip()]


def chosen(select: Select) -> Any:
    return None if select.is_blank() else select.value


class FormScreen(ModalScreen[str | None]):
    """Subclasses set TITLE and SUBMIT and implement `fields()` and `submit()`; `load`/`fill`
    and `check` when they need the store."""

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    #form-body { width: 84; max-width: 100%; height: auto; max-height: 100%;
                 border: round $primary; padding: 0 1; background: $surface; }
    #form-title { text-style: bold; }
    #form-fields { height: auto; }
    #form-fields Input, #form-fields Select { margin: 0; }
    #form-fields Input, #form-fields TextArea { background: $boost; }
    #form-fields Input:focus, #form-fields TextArea:focus,
    #form-fields Select:focus > SelectCurrent, #form-fields SelectionList:focus,
    #form-fields Checkbox:focus { background: $primary 35%; }
    #form-fields TextArea { height: 4; }
    #form-fields SelectionList { height: auto; max-height: 5; }
    .form-label { color: $text-muted; }
    #form-note { height: auto; max-height: 6; }
    #form-error { max-height: 4; }
    #form-error { height: auto; color: $error; }
    #form-hint { color: $text-muted; }
    """
    BINDINGS = keyed([
        Binding("ctrl+s", "submit", "Do it", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ])

    TITLE = ""
    SUBMIT = "create"  # what ctrl+s does, in the hint line
    HINT = ""  # a line under the title: what the form is for
    FIRST = ""  # the field that gets the focus when the form opens (default: the first)

    def __init__(self, dataset: str | None = None) -> None:
        super().__init__()
        self.dataset = dataset  # the dataset the screen behind shows: the form's default
        self.data: Any = None
        self.submitting = False

    # -- what subclasses give -------------------------------------------------------------
    def fields(self) -> ComposeResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, conn) -> Any:
        return None

    def fill(self, data: Any) -> None:
        """Put what `load` read into the fields (on the event loop)."""

    def values(self) -> dict[str, Any]:
        """The fields as plain values (on the event loop); FormError for one that does not
        parse."""
        return {}

    def check(self, conn, values: dict[str, Any]) -> Text | str:
        """The live note for these values (a worker; may read the store, never write)."""
        return ""

    def submit(self, conn, values: dict[str, Any]) -> str:  # pragma: no cover - abstract
        """Do it (a worker); returns what to tell the person; LoradError when refused."""
        raise NotImplementedError

    # -- the frame ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="form-body"):
            yield Static(self.TITLE, id="form-title")
            if self.HINT:
                yield Static(Text(self.HINT, style="dim"))
            with VerticalScroll(id="form-fields"):
                yield from self.fields()
            yield Static("", id="form-note")
            yield Static("", id="form-error")
            yield Static(Text(f"ctrl+s {self.SUBMIT}  ·  enter next field  ·  escape cancel",
                              style="dim"), id="form-hint")

    def on_mount(self) -> None:
        self._load()

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """The fields scroll in what the screen leaves once the title, note and hint are
        shown (so at 80x24 the price and the errors stay in view)."""
        if not self.is_attached:
            return
        body = self.query_one("#form-body")
        others = sum(w.outer_size.height for w in body.children if w.id != "form-fields")
        fields = self.query_one("#form-fields")
        room = max(3, self.size.height - 2 - others)
        if fields.styles.max_height is None or fields.styles.max_height.value != room:
            fields.styles.max_height = room

    @work(thread=True, exclusive=True, group="form-load")
    def _load(self) -> None:
        with self.app.connection() as conn:
            data = self.load(conn)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._filled, data)

    def _filled(self, data: Any) -> None:
        if not self.is_attached:
            return
        self.data = data
        self.fill(data)
        focusable = [w for w in self.query("#form-fields *") if w.focusable]
        first = self.query(self.FIRST).first() if self.FIRST else None
        if first is not None or focusable:
            (first or focusable[0]).focus()
        self.recheck()

    # -- live note --------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(TextArea.Changed)
    def _changed(self, _event) -> None:
        if self.data is not None:
            self.recheck()

    def recheck(self) -> None:
        try:
            values = self.values()
        except FormError as exc:
            self._show_note("", str(exc))
            return
        self._check(values)

    @work(thread=True, exclusive=True, group="form-check")
    def _check(self, values: dict[str, Any]) -> None:
        try:
            with self.app.connection() as conn:
                note, error = self.check(conn, values), ""
        except LoradError as exc:
            note, error = "", str(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_note, note, error)

    def _show_note(self, note: Text | str, error: str) -> None:
        if not self.is_attached:
            return
        shown = (str(note), error)
        if shown == getattr(self, "_shown", None):
            return  # the same words: no new layout for each key typed
        self._shown = shown
        self.query_one("#form-note", Static).update(note)
        self.query_one("#form-error", Static).update(Text(error))
        self.call_after_refresh(self._fit)

    # -- keys -------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        if self.submitting or self.data is None:
            return
        try:
            values = self.values()
        except FormError as exc:
            self._show_note(self.query_one("#form-note", Static).render(), str(exc))
            return
        self.submitting = True
        self.query_one("#form-error", Static).update(Text("working…", style="dim"))
        self._submit(values)

    @work(thread=True, group="form-submit")
    def _submit(self, values: dict[str, Any]) -> None:
        try:
            with self.app.connection() as conn:
                message = self.submit(conn, values)
        except LoradError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the form, nothing else stops
            self.app.call_from_thread(self._refused, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._done, message)

    def _refused(self, why: str) -> None:
        self.submitting = False
        if self.is_attached:
            self.query_one("#form-error", Static).update(Text(why))
            self.call_after_refresh(self._fit)

    def _done(self, message: str) -> None:
        self.app.notify(message, timeout=8)
        self.dismiss(message)


class DatasetForm(FormScreen):
    """A form about one dataset, picked in its Select `#{PICK}` (the dataset the screen behind
    shows, by default); `show_dataset` fills the other fields from the one picked."""

    PICK = ""

    def load(self, conn) -> dict[str, datasets.Dataset]:
        return {d.name: d for d in datasets.list_all(conn)}

    def fill(self, data) -> None:
        if not data:
            self.query_one("#form-error", Static).update("no datasets yet: create one first (N)")
            return
        box = self.query_one(f"#{self.PICK}", Select)
        box.set_options((name, name) for name in data)
        box.value = self.dataset if self.dataset in data else next(iter(data))
        self.show_dataset(data[box.value])

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == self.PICK and self.data and event.value in self.data:
            self.show_dataset(self.data[event.value])

    def show_dataset(self, d: datasets.Dataset) -> None:
        """Put the picked dataset's values into the fields."""


def queued(app, message: str) -> str:
    """Say what was queued; wake the daemon, or say it is stopped."""
    from lorad.core import daemon

    daemon.nudge(app.ws)
    if not daemon.status(app.ws).running:
        message += "; the daemon is stopped: D starts it"
    return message
