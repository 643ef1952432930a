"""Jobs screen: every durable job the daemon runs, live, with cancel and retry."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from lorad.core import fmt, jobs
from lorad.generation import generations

from ..keys import keyed
from .base import StoreScreen

STATE_STYLE = {
    "queued": "dim",
    "running": "bold cyan",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}
FILTERS: list[tuple[str, tuple[str, ...] | None]] = [
    ("all", None),
    ("active", jobs.ACTIVE),
    ("failed", ("failed",)),
    ("succeeded", ("succeeded",)),
    ("cancelled", ("cancelled",)),
]
SHOWN = 500  # newest jobs listed; `lorad jobs` reaches the rest


@dataclass
class JobsData:
    jobs: list[jobs.Job]
    counts: dict[str, int]


def job_state_text(job: jobs.Job) -> Text:
    label = job.state
    if job.state == "running" and job.cancel_requested:
        label = "cancelling"
    elif job.state == "queued" and job.attempts:
        label = f"retry {job.attempts + 1}/{job.max_attempts}"
    return Text(label, style=STATE_STYLE.get(job.state, ""))


def job_message(job: jobs.Job) -> str:
    if job.state in ("failed",) or (job.state == "queued" and job.error):
        return (job.error or "").splitlines()[0] if job.error else ""
    return job.progress_msg or ""


def same_cell(a, b) -> bool:
    """Text compares its characters and spans only, not its own style."""
    return a == b and getattr(a, "style", None) == getattr(b, "style", None)


def job_detail(job: jobs.Job) -> str:
    lines = [
        f"job {job.id}  {job.kind}  {job.state}  attempts {job.attempts}/{job.max_attempts}",
        f"created {fmt.age(job.created_at)} ago"
        + (f", started {fmt.age(job.started_at)} ago" if job.started_at else "")
        + (f", finished {fmt.age(job.finished_at)} ago" if job.finished_at else ""),
        f"payload {json.dumps(job.payload, sort_keys=True)}",
    ]
    if job.progress_msg:
        lines.append(f"progress {fmt.bar(job.progress, 20)} {job.progress_msg}")
    if job.error:
        lines.append(f"error: {job.error}")
    if job.result is not None:
        lines.append(f"result {json.dumps(job.result, sort_keys=True)[:400]}")
    return "\n".join(lines)


class JobsScreen(StoreScreen):
    LABEL = "Jobs"
    HELP = (
        "Everything slow or with side effects runs as a durable job in the daemon: ingest, "
        "training, pulls, uploads, generations. Jobs survive restarts; transient failures retry "
        "with backoff. Cancel stops a queued job at once and asks a running one to stop cleanly."
    )
    BINDINGS = keyed([
        Binding("c", "cancel", "Cancel job"),
        Binding("r", "retry", "Retry job"),
        Binding("f", "cycle_filter", "Filter"),
    ])

    def __init__(self) -> None:
        super().__init__()
        self.filter_index = 0
        self.shown: dict[int, jobs.Job] = {}
        self.shown_cells: dict[int, tuple] = {}  # what each row shows now

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="jobs-summary")
            table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True,
                              cursor_foreground_priority="renderable")  # red stays red
            table.add_columns("id", "kind", "state", "progress", "age", "message")
            yield table
            yield Static("", id="jobs-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    # -- data -------------------------------------------------------------------------------
    def load(self, conn) -> JobsData:
        _, states = FILTERS[self.filter_index]
        return JobsData(jobs.list_jobs(conn, states, limit=SHOWN), jobs.counts_by_state(conn))

    def show(self, data: JobsData) -> None:
        table = self.query_one("#jobs-table", DataTable)
        selected = self.selected_job_id()
        now = time.time()
        new_ids = [j.id for j in data.jobs]
        cells = {j.id: self.cells(j, now) for j in data.jobs}
        if new_ids != list(self.shown):
            table.clear()
            for job in data.jobs:
                table.add_row(*cells[job.id], key=str(job.id))
        else:  # only the cells that changed: 500 rows x 6 update_cell took 150 ms a reload
            for job in data.jobs:
                before = self.shown_cells.get(job.id, ())
                for n, (column, value) in enumerate(zip(table.columns, cells[job.id],
                                                        strict=True)):
                    if n >= len(before) or not same_cell(before[n], value):
                        table.update_cell(str(job.id), column, value)
        self.shown = {j.id: j for j in data.jobs}
        self.shown_cells = cells
        if selected in self.shown:
            table.move_cursor(row=table.get_row_index(str(selected)), animate=False)
        name, _ = FILTERS[self.filter_index]
        counts = "  ".join(f"{state} {n}" for state, n in data.counts.items())
        self.query_one("#jobs-summary", Static).update(f"filter: {name}   {counts}")
        self.update_detail()

    @staticmethod
    def cells(job: jobs.Job, now: float) -> tuple:
        progress = fmt.bar(job.progress) + (f" {job.progress * 100:3.0f}%" if job.progress is not None
                                            else "")
        return (str(job.id), job.kind, job_state_text(job), progress,
                fmt.age(job.created_at, now), job_message(job))

    def selected_job_id(self) -> int | None:
        table = self.query_one("#jobs-table", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value)

    def update_detail(self) -> None:
        job = self.shown.get(self.selected_job_id() or -1)
        self.query_one("#jobs-detail", Static).update(job_detail(job) if job else "No jobs yet.")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    # -- actions ----------------------------------------------------------------------------
    def action_cancel(self) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self.confirm_then(f"Cancel job {job_id} (a running one is asked to stop)?",
                              "cancel it", generations.cancel_job, job_id,
                              done_message=f"cancel requested for job {job_id}")

    def action_retry(self) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self.write(jobs.retry, job_id, done_message=f"job {job_id} queued again")

    def action_cycle_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        self.reload()
