"""Training screen: runs, and for the selected one a live loss chart, figures, checkpoints and
the last lines of its log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
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
COLUMNS = [Column("run", 9, grow=True), Column("state", 9),
           Column("stage", 6, keep=4), Column("step", 9), Column("loss", 7, "right", keep=2),
           Column("eta", 7, "right", keep=3)]
RAW_COLOR = (90, 90, 160)
SMOOTH_COLOR = (240, 180, 60)
EVAL_COLOR = (90, 200, 120)
RAW_STYLE, SMOOTH_STYLE, EVAL_STYLE = (f"rgb({r},{g},{b})" for r, g, b in
                                       (RAW_COLOR, SMOOTH_COLOR, EVAL_COLOR))


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
    checkpoints: list = field(default_factory=list)  # in the order saved; "rank": see below
    pod: pods.Pod | None = None
    cost: float = 0.0
    projected: float | None = None
    last_repo: str = ""  # where this run's checkpoints were last published
    last_progress_at: float | None = None  # when the log last brought a step
    watch_note: str | None = None  # "pod unreachable since ..." while the job cannot follow
    pod_spent: float = 0.0  # what the pod cost so far (runs.pod_cost, as the Pods screen)
    steps: tuple[int, int] | None = None  # the first and last step charted
    evals: list[tuple[int, float]] = field(default_factory=list)  # held-out loss per pass


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
    # "place": the checkpoint's place in the ranking of this run's rated checkpoints (0 best)
    every = ratings.rank_checkpoints(conn, run.id)
    ranked = [r for r in every if r.rated]
    ranks = {r.id: (place, r) for place, r in enumerate(ranked)}
    ranks.update({r.id: (None, r) for r in every if not r.rated and r.metrics})
    ckpts = [{**c.__dict__, "rank": ranks.get(c.id, (None, None))[1],
              "place": ranks.get(c.id, (None, None))[0]}
             for c in checkpoints.for_run(conn, run.id)]
    repo = loras.last_repo(conn, [c["id"] for c in ckpts])
    return RunDetail(run, xs, lows, highs, sx, sh, len(steps), ckpts, pod, cost.spent,
                     cost.projected, repo or "", runs.last_progress_at(conn, run.id),
                     runs.watch_note(conn, run),
                     runs.pod_cost(conn, pod).total if pod else 0.0,
                     (steps[0], steps[-1]) if steps else None,
                     [(s, v) for s, v in runs.chain_eval_points(conn, run.id)
                      if v is not None and lossplot.finite(v)])


def ordered(ckpts: list[dict], by: str) -> list[dict]:
    """The checkpoints in the order saved (`step`), or best rated first (`rank`: the order
    `ratings.rank_checkpoints` gives; unrated ones after, in the order saved)."""
    if by != "rank":
        return list(ckpts)
    return sorted(ckpts, key=lambda c: (c["place"] is None, c["place"] or 0))


def checkpoint_line(c: dict) -> Text:
    name = (c["name"] or "").removesuffix(".safetensors")
    at = (f"epoch {c['epoch']}" if c["epoch"] is not None else
          f"step {c['step']}" if c["step"] is not None else "final")
    return Text(f"{name}  {c['state']}  {at}{rank_label(c['rank'])}",
                style="green" if c["state"] == "local" else "dim")


def rank_label(rank: ratings.Rank | None) -> str:
    """How people rated a checkpoint's generations: the Wilson lower bound of its good share
    (few votes score low), good/rated and mean stars."""
    if rank is None:
        return ""
    scores = "".join(f"  {k} {v:.3g}" for k, v in sorted(rank.metrics.items()))
    if not rank.rated:
        return scores
    stars = f" {rank.mean_stars:.1f}★" if rank.mean_stars else ""
    return f"  rated {rank.score:.2f} ({rank.good}/{rank.rated} good{stars}){scores}"


class CheckpointList(VerticalScroll):
    """The selected run's checkpoints, scrolled from the keyboard once focused (`c`)."""

    BINDINGS = keyed([
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("home,g", "scroll_home", "First", show=False),
        Binding("end,G", "scroll_end", "Last", show=False),
    ])


class TrainingScreen(StoreScreen):
    LABEL = "Training"
    HELP = (
        "Runs train a dataset version on a pod: upload, cache latents, cache text-encoder "
        "outputs, train, each detached on the pod so a dropped connection or a daemon restart "
        "loses nothing. The chart shows avr_loss per step (band: min/max per bucket) and a "
        "smoothed curve; a resumed run continues its parent's curve. Stopping a run kills its "
        "process group on the pod; resume continues from the last saved state. The "
        "checkpoint list scrolls once c moves the keys to it (c again: back to the runs); o "
        "sorts it by step or by rank (the Wilson lower bound of its generations' good share; "
        "failed generations do not count; scores a pod command printed show beside). P "
        "publishes a pulled checkpoint (best rated first) to the Hugging Face Hub. E evaluates "
        "a checkpoint with the run's trainer's inference command on a pod (trainers declared "
        "with [trainers.NAME.inference], such as StableAvatar)."
    )
    BINDINGS = keyed([
        # the footer shows the first four (and ?, N); ? lists them all
        Binding("x", "stop_run", "Stop run"),
        Binding("r", "resume_run", "Resume"),
        Binding("l", "full_log", "Log"),
        Binding("P", "publish", "Publish"),
        Binding("s", "toggle_smooth", "Smoothing", show=False),
        Binding("p", "pull", "Pull checkpoints", show=False),
        Binding("S", "samples", "Samples", show=False),
        Binding("E", "evaluate", "Evaluate on the pod", show=False),
        # in help and on the checkpoint list's title line; the footer has no room at 80x24
        Binding("c", "focus_checkpoints", "Checkpoints / runs", show=False),
        Binding("o", "sort_checkpoints", "Sort checkpoints (step/rank)", show=False),
    ])

    def __init__(self) -> None:
        super().__init__()
        self.smoothing = True
        self.checkpoint_order = "step"  # or "rank"
        self.wanted: tuple = (None, 40)  # the run to load in detail, the chart's width
        self.data: TrainingData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="training-main"):
            table = RowList(COLUMNS, key_of=lambda r: r[0].plain if isinstance(r[0], Text)
                            else r[0], id="training-table")
            table.empty_text = "no runs: N, Start a training run (or `lorad train start`)"
            yield table
            with Vertical(id="training-side"):
                yield Static("", id="training-figures")
                yield Static("", id="training-legend")
                yield PlotextPlot(id="training-chart")
                yield Static("", id="training-checkpoints-title")
                with CheckpointList(id="training-checkpoints-box"):
                    yield Static("", id="training-checkpoints")
                yield Static("", id="training-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RowList).focus()
        self.show_checkpoints(None)
        self.reload()

    def reload(self) -> None:
        # what `load` needs of the widgets, read here on the event loop: the worker thread
        # found them gone when the screen closed under it
        self.wanted = (self.query_one(RowList).current_key,
                       max(40, self.query_one("#training-chart").size.width))
        super().reload()

    def load(self, conn) -> TrainingData:
        listed = runs.list_all(conn)
        key, width = self.wanted
        run = next((r for r in listed if r.name == key), listed[0] if listed else None)
        return TrainingData(listed, load_detail(conn, run, width * 2) if run else None)

    def show(self, data: TrainingData) -> None:
        self.data = data
        if self.wanted[0] is None and data.detail is not None:  # "the first run" is this one
            self.wanted = (data.detail.run.name, self.wanted[1])
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
            self.query_one("#training-legend", Static).update("")
            chart.refresh()
            self.show_checkpoints(None)
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
                 f"${pod.cost_per_hour if pod else 0:.2f}/h"
                 + (f", spent ${d.pod_spent:.2f}" if pod else "") + f")  run cost ${d.cost:.2f}"
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
        smooth = self.smoothing and bool(d.smooth_x)
        # the legend is a line of its own: plotext draws its legend inside the plot, over the
        # y-axis labels at narrow widths
        # with an eval curve the legend says less of the band: 80 columns hold one line
        legend = Text.assemble((f"avr_loss ({d.points}{'' if d.evals else ' steps'})", "bold"))
        if d.xs:
            if not d.evals:
                legend.append_text(Text.assemble("  ", ("━", RAW_STYLE), " min/max"))
            if smooth:
                legend.append_text(Text.assemble("  ", ("━", SMOOTH_STYLE), " smoothed"))
        if d.evals:
            legend.append_text(Text.assemble("  ", ("●", EVAL_STYLE),
                                             f" eval {d.evals[-1][1]:.4g}"))
        self.query_one("#training-legend", Static).update(legend)
        if d.xs:
            plt.plot(d.xs, d.highs, color=RAW_COLOR, marker="braille")
            plt.plot(d.xs, d.lows, color=RAW_COLOR, marker="braille")
            if smooth:
                plt.plot(d.smooth_x, d.smooth, color=SMOOTH_COLOR, marker="braille")
            if d.evals:  # the held-out loss, a point per evaluation pass
                plt.plot([s for s, _ in d.evals], [v for _, v in d.evals], color=EVAL_COLOR,
                         marker="dot")
            self._step_axis(chart, *(d.steps or (int(d.xs[0]), int(d.xs[-1]))))
        chart.refresh()
        self.show_checkpoints(d)
        self.query_one("#training-log", Static).update(
            Text("\n".join(r.log_tail.splitlines()[-8:]), style="dim"))

    @staticmethod
    def _step_axis(chart: PlotextPlot, first: int, last: int) -> None:
        """Whole steps on the x axis (a point is a step; plotext would label 242.6)."""
        width = max(chart.size.width, 40) - 8  # less the y labels and the frame
        ticks = lossplot.step_ticks(first, last, max(2, width // (len(str(last)) + 3)))
        if last > first:
            chart.plt.xlim(first, last)
        chart.plt.xticks(ticks, [str(t) for t in ticks])

    def show_checkpoints(self, d: RunDetail | None) -> None:
        ckpts = d.checkpoints if d else []
        title = self.query_one("#training-checkpoints-title", Static)
        box = self.query_one(CheckpointList)
        title.display = box.display = bool(ckpts)
        if not ckpts:
            self.query_one("#training-checkpoints", Static).update("")
            if box.has_focus:
                self.query_one(RowList).focus()
            return
        other = "step" if self.checkpoint_order == "rank" else "rank"
        title.update(Text.assemble(("checkpoints", "bold"),
                                   f" {len(ckpts)} by {self.checkpoint_order}  "
                                   f"(c: scroll, o: by {other})"))
        self.query_one("#training-checkpoints", Static).update(
            Text("\n").join(checkpoint_line(c) for c in ordered(ckpts, self.checkpoint_order)))

    def action_focus_checkpoints(self) -> None:
        box = self.query_one(CheckpointList)
        if box.has_focus or not box.display:
            self.query_one(RowList).focus()
        else:
            box.focus()

    def action_sort_checkpoints(self) -> None:
        self.checkpoint_order = "rank" if self.checkpoint_order == "step" else "step"
        self.query_one(CheckpointList).scroll_home(animate=False)
        if self.data:
            self.show_checkpoints(self.data.detail)

    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        # the run asked for last already (a key at the end of the list, the rows of a reload):
        # reading its 100,000 loss points again would change nothing
        # an empty list (key None) has no run to read: reloading for it read the store again,
        # which emptied the list again, which said "highlighted" again, 125 times a second
        if event.key is not None and event.key != self.wanted[0]:
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

    def action_evaluate(self) -> None:
        """A checkpoint through the run's trainer's inference command on a pod (a declared
        trainer's [trainers.NAME.inference])."""
        from lorad.core.errors import LoradError
        from lorad.evaluation import endpoints as pod_endpoints

        from ..forms.evaluate import EvaluateForm

        run = self.selected()
        if run is None:
            return
        endpoint = pod_endpoints.endpoint_id(run.trainer)
        try:
            pod_endpoints.trainer_of(endpoint)
        except LoradError as exc:
            self.notify(f"{exc}; evaluate it on fal instead (N, Generate) once published",
                        severity="warning")
            return
        self.app.push_screen(EvaluateForm(run.name, endpoint), self._evaluated)

    def _evaluated(self, message: str | None) -> None:
        if message:
            self.notify(message)
            self.reload()

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
