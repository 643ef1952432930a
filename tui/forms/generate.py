"""Generate: prompts x LoRAs x scales x seeds on an endpoint, priced as you type and sent only
with ctrl+s. One LoRA at one scale is a plain batch; more make a sweep (the grid view of the
Generations screen shows it), held to a budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, Select, SelectionList, TextArea

from lorad.core.store import transaction
from lorad.generation import endpoints, generations, loras
from lorad.media import datasets

from .base import FormError, FormScreen, chosen, labelled, number, queued

NO_LORA = ""  # the SelectionList value for "the base model alone"
DEFAULT_BUDGET = 25.0  # as `lorad sweep --budget`


@dataclass(frozen=True)
class Choices:
    endpoints: list[str]
    last_endpoint: str | None
    loras: list[str]  # newest first
    datasets: list[str]
    prompts: dict[str, list[str]]  # dataset -> its eval prompts


def parse_seeds(text: str, keep: list[int]) -> list[int]:
    """`3` means three random seeds (the same three while the count stays), `1, 2, 9` those."""
    text = text.strip() or "1"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and not text.endswith(","):
        count = number(parts[0], "seeds", kind=int)
        if not 1 <= count <= 64:
            raise FormError("seeds: a count from 1 to 64, or a list like 7, 8, 9")
        while len(keep) < count:
            keep.append(generations.new_seed())
        return keep[:count]
    return [number(p, "seed", kind=int) for p in parts]


class GenerateForm(FormScreen):
    TITLE = "Generate"
    HINT = "Priced before anything is sent; ctrl+s sends exactly what the price line says."
    SUBMIT = "send (paid)"

    def __init__(self, dataset: str | None = None, lora: str | None = None) -> None:
        super().__init__(dataset)
        self.lora = lora  # a LoRA the screen behind points at: ticked from the start
        self.random_seeds: list[int] = []
        self.planned: generations.SweepPlan | None = None

    def fields(self) -> ComposeResult:
        yield from labelled("endpoint", Select([], id="gen-endpoint"))
        yield from labelled("LoRAs (space ticks; none ticked: the base model)",
                            SelectionList(id="gen-loras"))
        yield from labelled("LoRA scales (comma-separated)", Input("0.8", id="gen-scales"))
        yield from labelled("dataset (its eval prompts and negative prompt)",
                            Select([], id="gen-dataset", prompt="none"))
        yield from labelled("prompts (one per line)", TextArea(id="gen-prompts"))
        yield from labelled("seeds: a count of new random ones, or a list like 7, 8",
                            Input("1", id="gen-seeds"))
        yield from labelled(f"budget in $ for a sweep (default {DEFAULT_BUDGET:g})",
                            Input(id="gen-budget", type="number"))

    def load(self, conn) -> Choices:
        every = datasets.list_all(conn)
        made = [e.id for e in endpoints.all_endpoints().values()
                if e.media in ("video", "image")]
        return Choices(made, generations.last_endpoint(conn),
                       [lo.name for lo in
                                                   reversed(loras.list_all(conn))],
                       [d.name for d in every],
                       {d.name: list(d.settings.get("eval_prompts", [])) for d in every})

    def fill(self, c: Choices) -> None:
        box = self.query_one("#gen-endpoint", Select)
        box.set_options((e, e) for e in c.endpoints)
        box.value = c.last_endpoint if c.last_endpoint in c.endpoints else c.endpoints[0]
        picks = self.query_one("#gen-loras", SelectionList)
        picks.add_options((name, name, name == self.lora) for name in c.loras)
        if c.loras:
            picks.highlighted = 0  # space ticks the first at once
        box = self.query_one("#gen-dataset", Select)
        box.set_options((n, n) for n in c.datasets)
        if self.dataset in c.datasets:
            box.value = self.dataset
            self.query_one("#gen-prompts", TextArea).text = "\n".join(c.prompts[self.dataset])

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "gen-dataset" and self.data and event.value in self.data.prompts:
            area = self.query_one("#gen-prompts", TextArea)
            if not area.text.strip():
                area.text = "\n".join(self.data.prompts[event.value])

    def on_selection_list_selected_changed(self, _event) -> None:
        if self.data is not None:
            self.recheck()

    def values(self) -> dict[str, Any]:
        scales = [number(s, "scale") for s in
                  self.query_one("#gen-scales", Input).value.split(",") if s.strip()]
        prompts = [line.strip() for line in
                   self.query_one("#gen-prompts", TextArea).text.splitlines() if line.strip()]
        budget = number(self.query_one("#gen-budget", Input).value, "budget")
        return {"endpoint": chosen(self.query_one("#gen-endpoint", Select)),
                "loras": list(self.query_one("#gen-loras", SelectionList).selected),
                "scales": scales or [1.0], "dataset": chosen(self.query_one("#gen-dataset",
                                                                               Select)),
                "prompts": prompts,
                "seeds": parse_seeds(self.query_one("#gen-seeds", Input).value,
                                     self.random_seeds),
                "budget": DEFAULT_BUDGET if budget is None else budget}

    def plan(self, conn, values) -> generations.SweepPlan:
        if values["endpoint"] is None:
            raise FormError("choose an endpoint")
        if not values["prompts"] and not values["dataset"]:
            raise FormError("write a prompt (or choose a dataset with eval prompts)")
        return generations.plan_sweep(
            conn, values["endpoint"], lora_names=values["loras"] or [None],
            scales=values["scales"] if values["loras"] else [1.0], prompts=values["prompts"],
            seeds=values["seeds"], dataset=values["dataset"])

    @staticmethod
    def is_sweep(values) -> bool:
        return len(values["loras"]) > 1 or len(values["scales"]) > 1

    def check(self, conn, values) -> Text:
        p = self.plan(conn, values)
        text = Text(f"{len(p.cells)} generation(s), about ${p.cost:.2f}", style="bold")
        if self.is_sweep(values):
            text.append(f" (a sweep; budget ${values['budget']:.2f})",
                        style="red" if p.cost > values["budget"] else "")
        text.append(endpoints.price_caveat(p.endpoint_id), style="yellow")
        for name in values["loras"]:
            warning = loras.get(conn, name).warning
            if warning:
                text.append(f"\n{name}: {warning}", style="yellow")
        return text

    def submit(self, conn, values) -> str:
        p = self.plan(conn, values)
        if self.is_sweep(values):
            ids = generations.submit_sweep(conn, p, budget=values["budget"])
        else:
            with transaction(conn):  # all of them or none
                ids = [generations.create(conn, p.endpoint_id, c["prompt"], lora=c["lora"],
                                          scale=c["scale"], seed=c["seed"], extra=p.extra,
                                          dataset=p.dataset) for c in p.cells]
        return queued(self.app, f"{len(ids)} generation(s) queued, about ${p.cost:.2f}; rate "
                                "them on the Generations screen (4)")
