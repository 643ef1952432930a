"""Pods screen: state, cost per hour, uptime and current run of each pod; start, stop, check."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from lorad.core import fmt
from lorad.training import pods, runs

from ..keys import keyed
from ..widgets.rowlist import Column, RowList
from .base import StoreScreen

COLUMNS = [Column("pod", 16), Column("provider", 8, keep=2), Column("state", 10),
           Column("$/h", 7, "right", keep=1), Column("uptime", 8, "right", keep=3),
           Column("run", 16, grow=True), Column("host key", 8, keep=4)]


@dataclass
class PodsData:
    pods: list[pods.Pod]
    current_runs: dict[int, str]
    spent: dict[int, runs.PodCost]


def spent_line(cost: runs.PodCost | None) -> str:
    """What the pod cost so far (`runs.pod_cost`, as the Training screen says it)."""
    total = cost.total if cost else 0.0
    return f"spent so far ${total:.2f}" + (
        f" (${cost.booked:.2f} booked)" if cost and cost.booked and cost.accruing else "")


class PodsScreen(StoreScreen):
    LABEL = "Pods"
    HELP = (
        "GPU pods lorad trains on: plain SSH hosts, or RunPod pods started and stopped through "
        "the RunPod API (RUNPOD_API_KEY). A RunPod pod is stopped 10 minutes after its last run "
        "unless another run is queued; every automatic stop is logged. Host keys are pinned "
        "on the first connection after each start. Spent: a RunPod pod's time booked at each "
        "stop and its time up since; a plain SSH host's runs at its $/h (the Training screen "
        "says the same)."
    )
    BINDINGS = keyed([
        Binding("s", "start_pod", "Start"),
        Binding("x", "stop_pod", "Stop"),
        Binding("c", "check_pod", "Check"),
    ])

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="pods-main"):
            table = RowList(COLUMNS, key_of=lambda r: r[0], id="pods-table")
            table.empty_text = "no pods: `lorad pod add NAME --host H --port P --key FILE`"
            yield table
            with Vertical(id="pods-side"):
                yield Static("", id="pods-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RowList).focus()
        self.reload()

    def load(self, conn) -> PodsData:
        listed = pods.list_all(conn)
        current = {p.id: active[-1].name for p in listed
                   if (active := runs.on_pod(conn, p.id, active=True))}
        now = time.time()
        return PodsData(listed, current, {p.id: runs.pod_cost(conn, p, now) for p in listed})

    def show(self, data: PodsData) -> None:
        self.data = data
        now = time.time()
        self.query_one(RowList).set_rows([
            (p.name, p.provider, Text(p.state, style="green" if p.state == "running" else ""),
             f"{p.cost_per_hour:.2f}", fmt.duration(now - p.started_at) if p.started_at else "-",
             data.current_runs.get(p.id, "-"), "pinned" if p.host_key else "-")
            for p in data.pods])
        self.show_detail()

    def selected(self) -> pods.Pod | None:
        key = self.query_one(RowList).current_key
        return next((p for p in getattr(self, "data", PodsData([], {}, {})).pods
                     if p.name == key), None)

    def show_detail(self) -> None:
        pod = self.selected()
        detail = self.query_one("#pods-detail", Static)
        if pod is None:
            detail.update("")
            return
        lines = [Text(pod.name, style="bold"),
                 Text(f"{pod.ssh_user}@{pod.ssh_host}:{pod.ssh_port}" if pod.ssh_host
                      else "no SSH endpoint (stopped?)"),
                 Text(f"policy: on finish {pod.policy.get('on_finish')}, on failure "
                      f"{pod.policy.get('on_failure')}"),
                 Text(spent_line(self.data.spent.get(pod.id)))]
        for trainer, options in sorted(pod.setup.get("trainers", {}).items()):
            where = ", ".join(f"{k} {v}" for k, v in sorted(options.items())) or "defaults"
            lines.append(Text(f"{trainer}: {where}"))
        if pod.models:
            lines.append(Text("models: " + ", ".join(m.rsplit("/", 1)[-1] for m in pod.models)))
        for key, value in sorted(pod.info.items()):
            lines.append(Text(f"{key}: {value}", style="dim"))
        detail.update(Text("\n").join(lines))

    def on_row_list_highlighted(self, _event: RowList.Highlighted) -> None:
        self.show_detail()

    def _queue(self, kind: str, word: str) -> None:
        pod = self.selected()
        if pod:
            self.write(pods.queue, kind, pod.name, done_message=f"{word} {pod.name} queued")

    def action_start_pod(self) -> None:
        pod = self.selected()
        if pod:
            self.confirm_then(f"Start pod {pod.name} (billed ${pod.cost_per_hour or 0:.2f}/h "
                              "while it runs)?", "start it", pods.queue, pods.START_KIND,
                              pod.name, done_message=f"start of {pod.name} queued")

    def action_stop_pod(self) -> None:
        pod = self.selected()
        if pod:
            self.confirm_then(f"Stop pod {pod.name} (a run on it loses the pod)?", "stop it",
                              pods.queue, pods.STOP_KIND, pod.name,
                              done_message=f"stop of {pod.name} queued")

    def action_check_pod(self) -> None:
        self._queue(pods.CHECK_KIND, "check of")
