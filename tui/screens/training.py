"""Training screen: runs, and for the selected one a live loss chart, figures, checkpoints and
the last lines of its log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, RichLog, Static
from textual_plotext import PlotextPlot

from lorad.core import fmt
from lorad.generation import loras, ratings
from lorad.publish import publish_job
from lorad.training import checkpoints, lossplot, pods, runs

from ..keys import keyed
from ..widgets.rowlist import Column, RowList
from .base import StoreScreen
from .publish import PublishRequest, PublishScreen

STATE_STYLE = {"created": "dim", "queued": "dim", "running": "bold cyan", "succeeded": "green",
               "failed": "bold red", "stopped": "yellow"}
COLUMNS = [Column("run", 10, grow=True), Column("state", 9, keep=1),
           Column("stage", 6, keep=4), Column("step", 11), Column("loss", 7, "right", keep=2),
           Column("eta", 7, "right", keep=3)]
RAW_COLOR = (90, 90, 160)
SMOOTH_COLOR = (240, 180, 60)


STALE_SECONDS = 120  # no new step for this long: the "updated ... ago" line turns yellow


@dataclass
class RunDetail:
    run: runs.Run
    xs: list[float] = field(default_factory=list)
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)
    smooth_x: list[float] = field(default_factory=list)
    smooth: list[float] = field(default_factory=list)
    points: int = 0
    checkpoints: list = field(default_factory=list)
    pod: pods.Pod | None = None
    cost: float = 0.0
    projected: float | None = None
    last_repo: str = ""  # where this run's checkpoints were last published
    last_progress_at: float | None = None  # when the log last brought a step
    watch_note: str | None = None  # "pod unreachable since ..." while the job cannot follow


@dataclass
class TrainingData:
    runs: list[runs.Run]
    detail: RunDetail | None


def load_detail(conn, run: runs.Run, buckets: int) -> RunDetail:
    points = runs.chain_losses(conn, run.id)  # a resumed run continues its parent's curve
    steps, values = [p[0] for p in points], [p[1] for p in points]
    xs, lows, highs = lossplot.downsample(steps, values, buckets)
    smoothed = lossplot.ema(values, alpha=0.05)
    sx, _sl, sh = lossplot.downsample(steps, smoothed, buckets)
    pod = pods.get_by_id(conn, run.pod_id) if run.pod_id else None
    cost = runs.cost(conn, run)
    ranks = {r.id: r for r in ratings.rank_checkpoints(conn, run.id)}
    ckpts = [{**c.__dict__, "rank": ranks.get(c.id)} for c in checkpoints.for_run(conn, run.id)]
    repo = loras.last_repo(conn, [c["id"] for c in ckpts])
    return RunDetail(run, xs, lows, highs, sx, sh, len(steps), ckpts, pod, cost.spent,
                     cost.projected, repo or "", runs.last_progress_at(conn, run.id),
                     runs.watch_note(conn, run))


def rank_label(rank: ratings.Rank | None) -> str:
    """How people rated a checkpoint's generations: the Wilson lower bound of its good share
    (few votes score low), good/rated and mean stars."""
    if rank is None or not rank.rated:
        return ""
    stars = f" {rank.mean_stars:.1f}★" if rank.mean_stars else ""
    return f"  rated {rank.score:.2f} ({rank.good}/{rank.rated} good{stars})"


class TrainingScreen(StoreScreen):
    LABEL = "Training"
    HELP = (
        "Runs train a dataset version on a pod: upload, cache latents, cache text-encoder "
        "outputs, train, each detached on the pod so a dropped connection or a daemon restart "
        "loses nothing. The chart shows avr_loss per step (band: min/max per bucket) and a "
        "smoothed curve; a resumed run continues its parent's curve. Stopping a run kills its "
        "process group on the pod; resume continues from the last saved state. P publishes a "
        "pulled checkpoint (best rated first) to the Hugging Face Hub."
    )
    BINDINGS = keyed([
        Binding("x", "stop_run", "Stop run"),
        Binding("r", "resume_run", "Resume"),
        Binding("s", "toggle_smooth", "Smoothing"),
        Binding("p", "pull", "Pull checkpoints"),
        Binding("l", "full_log", "Log"),
        Binding("P", "publish", "Publish"),
        Binding("S", "samples", "Samples"),
    ])

    def __init__(self) -> None:
        super().__init__()
        self.smoothing = True
        self.data: TrainingData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="training-main"):
            table = RowList(COLUMNS, key_of=lambda r: r[0].plain if isinstance(r[0], Text)
                            else r[0], id="training-table")
            table.empty_text = "no runs: `lorad train start NAME --dataset D --pod P`"
            yield table
            with Vertical(id="training-side"):
                yield Static("", id="training-figures")
                yield PlotextPlot(id="training-chart")
                yield Static("", id="training-checkpoints")
                yield Static("", id="training-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RowList).focus()
        self.reload()

    def load(self, conn) -> TrainingData:
        listed = runs.list_all(conn)
        key = self.query_one(RowList).current_key
        run = next((r for r in listed if r.name == key), listed[0] if listed else None)
        width = max(40, self.query_one("#training-chart").size.width)
        return TrainingData(listed, load_detail(conn, run, width * 2) if run else None)

    def show(self, data: TrainingData) -> None:
        self.data = data
        rows = []
        for r in data.runs:
            step = f"{(r.step or 0) + r.step_offset}/{(r.total_steps or 0) + r.step_offset}" \
                if r.total_steps else "-"
            rows.append((r.name, Text(r.state, style=STATE_STYLE.get(r.state, "")),
                         r.stage or "-", step,
                         f"{r.avr_loss:.4g}" if r.avr_loss is not None else "-",
                         fmt.duration(r.remaining) if r.remaining and r.state == "running"
                         else "-"))
        self.query_one(RowList).set_rows(rows)
        self.show_detail(data.detail)

    def show_detail(self, d: RunDetail | None) -> None:
        figures = self.query_one("#training-figures", Static)
        chart = self.query_one(PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        if d is None:
            figures.update("")
            chart.refresh()
            return
        r = d.run
        rate = f"{r.rate:.2f} it/s" if r.rate and r.rate >= 1 else (
            f"{1 / r.rate:.1f} s/it" if r.rate else "-")
        pod = d.pod
        running = r.state == "running"
        step = (f"  step {(r.step or 0) + r.step_offset}/{(r.total_steps or 0) + r.step_offset}"
                if r.total_steps else "")
        eta = f"  ETA {fmt.duration(r.remaining)}" if running and r.remaining else ""
        lines = [
            Text.assemble((r.name, "bold"), f"  {r.state}  stage {r.stage or '-'}{step}  epoch "
                          f"{r.epoch or '-'}  {rate}{eta}"),
            Text(f"pod {pod.name if pod else '-'} ({pod.state if pod else '-'}, "
                 f"${pod.cost_per_hour if pod else 0:.2f}/h)  cost ${d.cost:.2f}"
                 + (f", projected ${d.projected:.2f}" if d.projected else "")
                 + (f", budget ${r.budget:.2f}" if r.budget else "")),
        ]
        if running and d.last_progress_at:
            age = time.time() - d.last_progress_at
            lines.append(Text(f"updated {fmt.duration(age)} ago",
                              style="yellow" if age > STALE_SECONDS else "dim"))
        if d.watch_note:
            lines.append(Text(d.watch_note, style="bold yellow"))
        if running and r.budget and d.projected and d.projected > r.budget:
            lines.append(Text(f"projected ${d.projected:.2f} passes the budget ${r.budget:.2f}: "
                              "the run will be stopped when it is spent", style="bold yellow"))
        if r.error:
            lines.append(Text(r.error.splitlines()[0], style="bold red"))
        figures.update(Text("\n").join(lines))
        plt.title(f"avr_loss ({d.points} steps)")
        if d.xs:
            plt.plot(d.xs, d.highs, color=RAW_COLOR, marker="braille", label="raw max")
            plt.plot(d.xs, d.lows, color=RAW_COLOR, marker="braille")
            if self.smoothing and d.smooth_x:
                plt.plot(d.smooth_x, d.smooth, color=SMOOTH_COLOR, marker="braille",
                         label="smoothed")
        chart.refresh()
        ck = self.query_one("#training-checkpoints", Static)
        ck.update(Text("\n").join(
            [Text("checkpoints", style="bold")]
            + [Text(f"{c['name']}  {c['state']}  "
                    + (f"epoch {c['epoch']}" if c["epoch"] is not None else
                       f"step {c['step']}" if c["step"] is not None else "final")
                    + rank_label(c["rank"]),
                    style="green" if c["state"] == "local" else "dim")
               for c in d.checkpoints[-8:]]) if d.checkpoints else "")
        self.query_one("#training-log", Static).update(
            Text("\n".join(r.log_tail.splitlines()[-8:]), style="dim"))

    def on_row_list_highlighted(self, _event: RowList.Highlighted) -> None:
        self.reload()

    def selected(self) -> runs.Run | None:
        key = self.query_one(RowList).current_key
        return next((r for r in (self.data.runs if self.data else []) if r.name == key), None)

    def action_samples(self) -> None:
        from .samples import SamplesScreen

        run = self.selected()
        if run is not None:
            self.app.push_screen(SamplesScreen(run.name,
                                               self.app.ws.downloads_dir() / run.name / "sample"))

    def action_stop_run(self) -> None:
        run = self.selected()
        if run:
            self.confirm_then(f"Stop run {run.name} (its trainer is killed on the pod; the "
                              "last saved state can be resumed)?", "stop it",
                              runs.request_stop, run.id, done_message=f"stopping {run.name}")

    def action_resume_run(self) -> None:
        run = self.selected()
        if run:
            self.confirm_then(f"Resume {run.name} as a new run on its pod (the pod's time is "
                              "paid again)?", "resume it", runs.resume, run.name,
                              done_message=f"{run.name} resumes")

    def action_toggle_smooth(self) -> None:
        self.smoothing = not self.smoothing
        if self.data:
            self.show_detail(self.data.detail)

    def action_pull(self) -> None:
        run = self.selected()
        if run is None:
            return

        self.write(checkpoints.pull_missing, run.id, done_message="checkpoint pulls queued")

    def action_publish(self) -> None:
        d = self.data.detail if self.data else None
        local = [c for c in (d.checkpoints if d else []) if c["state"] == "local"]
        if not local:
            self.notify("no checkpoint of this run is on this machine yet: p pulls them",
                        severity="warning")
            return
        # best rated first, then newest
        local.sort(key=lambda c: ((c["rank"].score if c["rank"] else -1), c["id"]),
                   reverse=True)
        self.app.push_screen(PublishScreen(local, d.last_repo), self._publish)

    def _publish(self, request: PublishRequest | None) -> None:
        if request is None:
            return
        self.write(lambda conn: publish_job.enqueue(
            conn, str(request.checkpoint_id), request.repo, private=request.private,
            convert=request.convert, name=request.name or None),
            done_message=f"publishing to {request.repo} (Jobs screen: 0)")

    def action_full_log(self) -> None:
        run = self.selected()
        if run:
            self._fetch_log(run)

    @work(thread=True, exclusive=True, group="training-log")
    def _fetch_log(self, run: runs.Run) -> None:
        from lorad.training import train_job

        try:
            lines = train_job.readable_log(self.app.ws, run)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.app.call_from_thread(self.notify, f"cannot read the log: {exc}",
                                      severity="error")
            return
        self.app.call_from_thread(self.app.push_screen, LogScreen(run.name, lines))


class LogScreen(ModalScreen[None]):
    """A run's whole log, scrollable; progress-bar updates collapsed to the last per line."""

    BINDINGS = keyed([Binding("escape,q,l", "dismiss", "Close")])

    def __init__(self, name: str, lines: list[str]) -> None:
        super().__init__()
        self.run_name = name
        self.lines = lines

    def compose(self) -> ComposeResult:
        log = RichLog(id="log-body", wrap=False, max_lines=20000)
        yield log

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        log.write(Text(f"{self.run_name}: train log (escape closes)", style="bold"))
        for line in self.lines:
            log.write(line)
