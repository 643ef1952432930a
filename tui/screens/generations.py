"""Generations screen: outputs grouped by sweep, rated from the keyboard, retaken, compared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Input, Static

from lorad.generation import chains, generations, loras, ratings
from lorad.media import datasets
from lorad.training import checkpoints

from ..keys import keyed
from ..widgets.filmstrip import Filmstrip, load_image
from ..widgets.rowlist import Column, RowList
from .base import StoreScreen
from .chain_row import ChainRowScreen
from .confirm import ConfirmScreen, ask_stars
from .retake import RetakeScreen
from .sweep_grid import SweepGridScreen, pages_of

EMPTY_GENERATIONS = "no generations: N, Generate or sweep (or `lorad gen`, `lorad sweep`)"
# the rating first: status, check, stars and verdict stay; seed, sweep and tags go first
COLUMNS = [Column("", 1), Column("id", 5, "right"), Column("sweep", 10, keep=4),
           Column("lora", 12, keep=2), Column("scale", 5, "right", keep=3),
           Column("seed", 10, "right", keep=5), Column("status", 10), Column("check", 5),
           Column("stars", 5), Column("verdict", 12, keep=1),
           Column("tags", 12, keep=4, grow=True)]
STATUS_STYLE = {"queued": "dim", "submitting": "cyan", "submitted": "cyan", "in_progress": "cyan",
                "completed": "green", "failed": "bold red", "cancelled": "yellow",
                "unknown": "bold magenta"}
@dataclass
class GenRow:
    gen: generations.Generation
    lora: str
    rating: ratings.Rating | None
    checkpoint: str = ""
    chain: str = ""  # the chain it is a shot of


def group_label(x: GenRow) -> str:
    """The sweep column: a sweep's id, or a chain's name and shot."""
    g = x.gen
    if x.chain and g.shot_index is not None:
        return f"{x.chain}#{g.shot_index + 1}"
    return g.sweep_id or "-"


@dataclass
class GenData:
    rows: list[GenRow]
    in_flight: int
    spent: float
    checklist: list[str]
    answers_lost: int = 0  # submits whose answer was lost, ever


def matches(row: GenRow, query: str) -> bool:
    """`/` filter: every word must hold. lora:NAME, scale:0.8, sweep:ID, status:S, verdict:V,
    ckpt:NAME; any other word is looked for in the prompt and LoRA name."""
    g, r = row.gen, row.rating
    for word in query.lower().split():
        key, sep, value = word.partition(":")
        if not sep:
            if word not in f"{g.prompt or ''} {row.lora}".lower():
                return False
        elif key == "lora" and value not in row.lora.lower():
            return False
        elif key == "ckpt" and value not in row.checkpoint.lower():
            return False
        elif key == "scale" and not _same_number(value, g.scale):
            return False
        elif key == "sweep" and not (g.sweep_id or "").startswith(value):
            return False
        elif key == "status" and g.status != value:
            return False
        elif key == "verdict" and (r is None or (r.verdict or "") != value):
            return False
    return True


def _same_number(text: str, value: float | None) -> bool:
    try:
        return value is not None and abs(float(text) - value) < 1e-9
    except ValueError:
        return False


def filmstrip_of(gen: generations.Generation) -> Path | None:
    if not gen.output_path:
        return None
    strip = Path(gen.output_path).with_suffix(".strip.jpg")
    return strip if strip.exists() else None


class GenerationsScreen(StoreScreen):
    LABEL = "Generations"
    HELP = (
        "Test generations of your LoRAs, grouped by sweep. Rate with s then 1-5, a approve, n "
        "needs review, X reject (counts against the checkpoint's rank, as a retake does), t "
        "toggles checklist tags; r retakes with a new seed (linked to the original) after "
        "showing its price. "
        "Automatic checks flag outputs with the wrong size, fps or frames and frozen videos "
        "before you look. Mark several with m and press c to compare their filmstrips; v shows "
        "the sweep as a grid (LoRA x scale) for one prompt and seed. f cycles "
        "quick filters; / filters by lora:, ckpt:, scale:, sweep:, status:, verdict: or words. "
        "Ratings are never overwritten; checkpoints are ranked from them (`lorad rate rank`)."
    )
    BINDINGS = keyed([
        # digits switch screens everywhere (the app's keys); stars are s, then 1-5
        # the footer shows the first four (and ?, N); ? lists them all
        Binding("s", "ask_stars", "Stars"),
        Binding("a", "verdict('approve')", "Approve"),
        Binding("r", "retake", "Retake"),
        Binding("space", "play", "Play"),
        Binding("X", "verdict('reject')", "Reject", show=False),
        Binding("n", "verdict('needs_review')", "Needs review", show=False),
        Binding("t", "tag", "Tag", show=False),
        Binding("m", "mark", "Mark", show=False),
        Binding("c", "compare", "Compare", show=False),
        Binding("v", "grid", "Sweep grid / chain", show=False),
        Binding("f", "cycle_filter", "Filter", show=False),
        Binding("slash", "search", "Search", show=False),
        Binding("x", "cancel", "Cancel request", show=False),
        Binding("R", "resolve_unknown", "Send again or forget (unknown)", show=False),
    ])
    FILTERS = ["all", "unrated", "approve", "needs_review", "retake", "reject", "failed checks"]

    def __init__(self) -> None:
        super().__init__()
        self.filter_index = 0
        self.search_text = ""
        self.data: GenData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="gens-summary")
            with Horizontal(id="gens-main"):
                table = RowList(COLUMNS, key_of=lambda r: int(r[1]), id="gens-table")
                table.empty_text = EMPTY_GENERATIONS
                yield table
                with Vertical(id="gens-side"):
                    yield Filmstrip(id="gens-filmstrip")
                    yield Static("", id="gens-detail")
            yield Input(placeholder="tag (enter toggles it)", id="gens-tag")
            yield Input(placeholder="filter: lora:NAME ckpt:NAME scale:0.8 sweep:ID status:S "
                                    "verdict:V words (enter applies, empty clears)",
                        id="gens-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#gens-tag", Input).display = False
        self.query_one("#gens-filter", Input).display = False
        self.query_one(RowList).focus()
        self.reload()

    # the number keys rate here; screens are switched from the palette or other screens
    def changes(self, conn) -> tuple:
        # what the list shows: generations, their ratings, LoRA, checkpoint and chain names,
        # the datasets' checklists (costs change with the generations)
        return (generations.change_mark(conn), ratings.change_mark(conn),
                loras.change_mark(conn), checkpoints.change_mark(conn),
                len(chains.list_all(conn)), datasets.change_mark(conn))

    def load(self, conn) -> GenData:
        names = loras.names(conn)
        ckpts = checkpoints.names(conn)
        chain_names = {c.id: c.name for c in chains.list_all(conn)}
        rows = []
        for g in generations.list_all(conn):
            r = ratings.current(conn, g.id)
            rows.append(GenRow(g, names.get(g.lora_id, "-"), r, ckpts.get(g.checkpoint_id, ""),
                               chain_names.get(g.chain_id, "")))
        if self.search_text:
            rows = [x for x in rows if matches(x, self.search_text)]
        flt = self.FILTERS[self.filter_index]
        if flt == "unrated":
            rows = [x for x in rows if x.rating is None]
        elif flt in ratings.VERDICTS:
            rows = [x for x in rows if x.rating and x.rating.verdict == flt]
        elif flt == "failed checks":
            rows = [x for x in rows if x.gen.checks and not x.gen.checks.get("ok", True)]
        return GenData(rows, generations.in_flight(conn), generations.spent(conn),
                       generations.checklist(conn), generations.unknown_outcomes(conn))

    def show(self, data: GenData) -> None:
        self.data = data
        table = self.query_one(RowList)
        out = []
        for x in data.rows:
            g, r = x.gen, x.rating
            check = "" if not g.checks else ("ok" if g.checks.get("ok") else "FLAG")
            out.append((
                "•" if g.id in table.marked else " ", str(g.id), group_label(x), x.lora,
                f"{g.scale:g}" if g.scale is not None else "-", str(g.seed or "-"),
                Text(g.status, style=STATUS_STYLE.get(g.status, "")),
                Text(check, style="red" if check == "FLAG" else "green"),
                "★" * (r.stars or 0) if r else "", (r.verdict or "") if r else "",
                ", ".join(r.tags) if r else ""))
        table.set_rows(out)
        flt = self.FILTERS[self.filter_index]
        table.empty_text = (
            f"nothing matches [{flt}{' ' + self.search_text if self.search_text else ''}]: f "
            "cycles the filters, / changes the search" if flt != "all" or self.search_text
            else EMPTY_GENERATIONS)
        self.query_one("#gens-summary", Static).update(Text(  # plain text: [x] is not markup
            f"{len(data.rows)} shown [{self.FILTERS[self.filter_index]}"
            + (f" {self.search_text}" if self.search_text else "") + "]   in flight "
            f"{data.in_flight}   spent ${data.spent:.2f}"
            + (f"   answers lost {data.answers_lost} (status unknown: R decides)"
               if data.answers_lost else "")))
        self.show_detail()

    def current(self) -> GenRow | None:
        key = self.query_one(RowList).current_key
        return next((x for x in (self.data.rows if self.data else []) if x.gen.id == key), None)

    def show_detail(self) -> None:
        x = self.current()
        detail = self.query_one("#gens-detail", Static)
        if x is None:
            detail.update("")
            self.query_one(Filmstrip).show_image(None)
            return
        g = x.gen
        lines = [Text(f"#{g.id} {g.endpoint}", style="bold"), Text(g.prompt or "", style="dim"),
                 Text(f"lora {x.lora} scale {g.scale} seed {g.seed}  cost ${g.cost or 0:.2f}"
                      + (f"  {g.inference_time:.0f} s" if g.inference_time else ""))]
        if g.parent_id:
            lines.append(Text(f"retake of #{g.parent_id}"))
        for problem in (g.checks or {}).get("problems", []):
            lines.append(Text(problem, style="red"))
        if g.error:
            lines.append(Text(g.error, style="bold red"))
        detail.update(Text("\n").join(lines))
        self._load_strip(g.id, filmstrip_of(g))

    @work(thread=True, exclusive=True, group="gen-strip")
    def _load_strip(self, gen_id: int, path: Path | None) -> None:
        image = load_image(path) if path else None
        self.app.call_from_thread(self._show_strip, gen_id, image)

    def _show_strip(self, gen_id: int, image) -> None:
        if self.query_one(RowList).current_key == gen_id:
            self.query_one(Filmstrip).show_image(image)

    def on_row_list_highlighted(self, _event: RowList.Highlighted) -> None:
        self.show_detail()

    # -- actions ----------------------------------------------------------------------------
    def _rate(self, **kw) -> None:
        x = self.current()
        if x is not None:
            self.write(lambda conn, gen_id: ratings.rate(conn, gen_id, **kw), x.gen.id)

    def action_ask_stars(self) -> None:
        x = self.current()
        if x is not None:
            ask_stars(self.app, x.gen.id, self._rate)

    def action_verdict(self, verdict: str) -> None:
        self._rate(verdict=verdict)
        self.query_one(RowList).action_cursor_down()

    def action_retake(self) -> None:
        x = self.current()
        if x is None:
            return
        if x.gen.chain_id is not None and x.gen.shot_index is not None:
            self._price_chain_retake(x.chain, x.gen.shot_index + 1)  # the shots after it too
            return
        gen_id = x.gen.id

        def chosen(asked: dict | None) -> None:
            if asked is None:
                return
            self.write(lambda conn: generations.retake(conn, gen_id, seed=asked["seed"],
                                                       scale=asked["scale"],
                                                       prompt=asked["prompt"]),
                       done_message=f"retake of #{gen_id} queued")
            self._rate(verdict="retake")

        self.app.push_screen(RetakeScreen(x.gen, generations.new_seed(avoid=x.gen.seed)),
                             chosen)

    @work(thread=True, exclusive=True, group="chain-retake")
    def _price_chain_retake(self, name: str, shot: int) -> None:
        with self.app.connection() as conn:
            try:
                chain, plan = chains.retake_plan(conn, name, shot)
            except chains.ChainError as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="warning", timeout=8)
                return
        self.app.call_from_thread(self._confirm_chain_retake, chain, plan, shot)

    def _confirm_chain_retake(self, chain, plan, shot: int) -> None:
        later = len(plan.shots) - 1
        question = (f"chain {chain.name}: shot {shot} again with a new seed"
                    + (f", and the {later} shot(s) after it (they start from its last frame)"
                       if later else "") + f": about ${plan.cost:.2f}.")

        def chosen(key: str | None) -> None:
            if key == "y":
                self.write(chains.retake, chain, plan,
                           done_message=f"chain {chain.name}: shots {shot}..{chain.shot_count} "
                                        "queued")

        self.app.push_screen(ConfirmScreen(question, {"y": "run them"}), chosen)

    def action_cancel(self) -> None:
        x = self.current()
        if x is not None:
            self.confirm_then(f"Cancel #{x.gen.id} (on {x.gen.service} too, if it is there)?",
                              "cancel it", generations.cancel, x.gen.id,
                              done_message=f"#{x.gen.id}: cancelling")

    def action_resolve_unknown(self) -> None:
        """A submit whose answer was lost: the service may have it. The person decides."""
        x = self.current()
        if x is None or x.gen.status != generations.UNKNOWN:
            self.notify("R is for a generation whose status is unknown (its submit's answer "
                        "was lost)", severity="warning")
            return
        gen_id = x.gen.id

        def decided(choice: str | None) -> None:
            if choice == "y":
                self.write(generations.resubmit, gen_id, done_message=f"#{gen_id} sent again")
            elif choice == "f":
                self.write(generations.forget, gen_id, done_message=f"#{gen_id} forgotten")

        self.app.push_screen(ConfirmScreen(
            f"#{gen_id}: its submit's answer was lost, so {x.gen.service} may have it (and "
            f"bill ${x.gen.cost or 0:.2f} for it). Check the service's dashboard. Sending it "
            "again may pay for it twice.", {"y": "send again", "f": "forget it"}), decided)

    def action_tag(self) -> None:
        box = self.query_one("#gens-tag", Input)
        box.display = True
        box.placeholder = "tag: " + ", ".join(self.data.checklist if self.data else [])
        box.value = ""
        box.focus()

    def action_search(self) -> None:
        box = self.query_one("#gens-filter", Input)
        box.display = True
        box.value = self.search_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one(RowList).focus()
        if event.input.id == "gens-filter":
            self.search_text = event.value.strip()
            self.reload()
            return
        x = self.current()
        tag = event.value.strip()
        if x is not None and tag:
            self.write(ratings.toggle_tag, x.gen.id, tag)

    def action_play(self) -> None:
        x = self.current()
        if x is None or not x.gen.output_path:
            self.notify("no output yet", severity="warning")
            return
        self.app.play_media(x.gen.output_path, f"#{x.gen.id} {x.gen.prompt or ''}")

    def action_mark(self) -> None:
        table = self.query_one(RowList)
        table.toggle_mark()
        table.action_cursor_down()

    def action_compare(self) -> None:
        table = self.query_one(RowList)
        keys = table.selected_keys()
        chosen = [x for x in (self.data.rows if self.data else []) if x.gen.id in keys]
        if len(chosen) < 2:
            self.notify("mark two or more generations with m, then press c")
            return
        self._compare(chosen)

    @work(thread=True, exclusive=True, group="gen-compare")
    def _compare(self, chosen: list[GenRow]) -> None:
        images = [(x, load_image(filmstrip_of(x.gen)) if filmstrip_of(x.gen) else None)
                  for x in chosen]
        self.app.call_from_thread(self.app.push_screen, CompareScreen(images))

    def action_grid(self) -> None:
        x = self.current()
        if x is not None and x.gen.chain_id is not None:
            self._chain_row(x.gen.chain_id)
            return
        if x is None or not x.gen.sweep_id:
            self.notify("the grid shows a sweep or a chain: move to a generation of one "
                        "(`lorad sweep`, `lorad chain run`)")
            return
        rows = [r for r in (self.data.rows if self.data else [])
                if r.gen.sweep_id == x.gen.sweep_id]
        self._grid(x, rows)

    @work(thread=True, exclusive=True, group="gen-grid")
    def _chain_row(self, chain_id: int) -> None:
        with self.app.connection() as conn:
            chain = chains.get_by_id(conn, chain_id)
            shots = [generations.get(conn, g) if g else None for g in chain.shots]
        images = {g.id: load_image(filmstrip_of(g)) for g in shots if g and filmstrip_of(g)}
        self.app.call_from_thread(self.app.push_screen, ChainRowScreen(chain, shots, images))

    @work(thread=True, exclusive=True, group="gen-grid")
    def _grid(self, x: GenRow, rows: list[GenRow]) -> None:
        pages = pages_of(rows)
        images = {r.gen.id: load_image(filmstrip_of(r.gen)) for r in rows
                  if filmstrip_of(r.gen)}
        start = next((i for i, p in enumerate(pages)
                      if (p.prompt, p.seed) == ((x.gen.prompt or ""), x.gen.seed)), 0)
        self.app.call_from_thread(self.app.push_screen,
                                  SweepGridScreen(x.gen.sweep_id, pages, images, start))

    def action_cycle_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(self.FILTERS)
        self.reload()


class CompareScreen(ModalScreen[None]):
    """Filmstrips of several generations one above the other."""

    BINDINGS = keyed([Binding("escape,q,c", "dismiss", "Close")])

    def __init__(self, items: list) -> None:
        super().__init__()
        self.items = items

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-body"):
            for x, _image in self.items:
                g = x.gen
                yield Static(f"#{g.id} {x.lora} scale {g.scale} seed {g.seed}")
                yield Filmstrip()

    def on_mount(self) -> None:
        for strip, (_x, image) in zip(self.query(Filmstrip), self.items, strict=False):
            strip.show_image(image)
