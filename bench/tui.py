"""The terminal UI at full size: cold start, opening each screen, one keypress on each screen,
what a store change costs, keys while the store changes, and memory, against the stock Textual
DataTable in the same run.

Why: the TUI must stay usable on a workspace that has lived a while (issue targets in brackets):
100,000 clips with captions, 1,000 generations, a 100,000-step run. A screen that reads or draws
every row on each key, or a chart rebuilt on every refresh, shows up here and not in the tests.

The workspace is built with bulk SQL in one transaction: --clips clips in one dataset (states,
motion and flag badges mixed, all sharing one filmstrip JPEG), each with a caption and a
finished ingest job; --gens completed generations of the run's checkpoints, each with its own
filmstrip, about 60 % rated (some twice); one running run with --steps loss points and
--checkpoints checkpoints on one of three pods. The daemon does not run.

Measured (all headless at 120x36; the terminal's own drawing is not measured, the encoding of
each frame for it is):

1. Start [< 1.5 s]: a fresh process doing what `lorad tui --no-daemon` does (find the
   workspace, open its store, LoradApp(ws).run()), from just before the parent starts it to the
   first frame in which the Clips list is painted with its rows, split into interpreter and
   imports, app up to the first read, the read (worker), its show(), the frame. The same in this
   process from LoradApp(ws) under run_test (imports done). Opening each screen: its digit key
   until its list is painted with its rows (first visit: compose, load() in a worker, show()),
   in both processes; the DataTable column is add_rows of the same rows until painted.
2. Key [p95 < 50 ms] on Clips, Captions, Training, Generations, Pods and Jobs, --moves presses
   of down each, from the top. "frame": the list's cursor action (what the key binding runs),
   the screen's handler of the highlight it posts (detail panel, lint, starting a worker; called
   at once instead of from the message queue, so it runs once), the messages that leaves on the
   screen, and the frame Textual makes of it (layout if needed, dirty regions rendered, encoded
   for a terminal) without waiting for the 60 fps frame timer. "list": the cursor action and
   rendering the list's visible lines (as bench/captions_nav.py). "settle": from the key until
   the workers it started are done, their results shown and that frame made (what one waits
   for before the detail or the chart is right). Baseline ("DT"): the stock DataTable holding
   the same rows (copied from the screen's list) in a bare app, same moves, same measures (it
   has no handler); the ratio is lorad's p95 over the DataTable's.
3. Store change: each screen's reload, --reloads times: load() in its worker thread, show() on
   the event loop (keys wait meanwhile), and until settled (the frame after it).
4. Live, --live seconds per screen: a running run as the daemon follows it (a loss point and
   the run's step committed every second, its log poll), so the store watcher reloads the
   screen on each commit, while down is pressed every 0.1 s; each key is timed from when it was
   due (a key that arrives while show() or a garbage collection holds the event loop waits).
   Also: reads started and shown, most reads at once, Python's full garbage collections (each
   walks every object kept, all threads stopped) and the longest.
5. Memory [< 300 MB]: peak RSS (ru_maxrss) of the start process of 1. after it opened every
   screen; the app keeps every visited screen (modes), so this is what it holds at most without
   the live phase.

A missed target is listed under the tables (exit 0); PROBLEMS (exit 1) means a screen never
showed its rows or the start process failed, i.e. nothing was measured there. Other processes
on the machine skew every figure: the load average is printed.

    .venv/bin/python bench/tui.py [--clips 100000] [--gens 1000] [--steps 100000]
                                  [--moves 200] [--reloads 5] [--live 10] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from benchrun import problem_lines, run_in_tempdir  # noqa: E402

SIZE = (120, 36)
TARGET_START_S = 1.5
TARGET_P95_MS = 50.0
TARGET_RSS_MB = 300.0
# the list each screen is reviewed with, by mode
LISTS = {"clips": "#clips-table", "captions": "#captions-table", "training": "#training-table",
         "generations": "#gens-table", "pods": "#pods-table", "jobs": "#jobs-table"}
LIVE_INTERVAL = 1.0  # s between the commits of a followed run (training poll_seconds)
WAIT_S = 120.0  # a screen not painted with rows by then is a problem, not a hang


# ---- the workspace ----------------------------------------------------------------------------

def make_workspace(root: Path, n_clips: int, n_gens: int, n_steps: int, n_ckpts: int):
    """Bulk SQL in one transaction; returns the workspace."""
    from PIL import Image

    from lorad.core import workspace
    from lorad.media import datasets

    ws = workspace.init(root / "ws")
    strips = ws.root / "media" / "filmstrips"
    strips.mkdir(parents=True, exist_ok=True)
    outputs = ws.root / "outputs"
    outputs.mkdir(exist_ok=True)
    # a filmstrip as ingest makes them: three 480x848 frames at 160 px high, side by side
    img = Image.new("RGB", (270, 160))
    for x in range(270):
        for y in range(0, 160, 4):
            img.putpixel((x, y), (x % 256, (y * 3) % 256, 120))
    img.save(strips / "shared.jpg", quality=80)
    strip_bytes = (strips / "shared.jpg").read_bytes()
    rng = random.Random(7)
    conn = ws.connect()
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")
    now = time.time()
    t0 = now - 86400 * 30
    states = ["ready"] * 70 + ["approved"] * 20 + ["rejected"] * 8 + ["error"] * 2
    motions = ["static", "slight", "moving", "panning"]
    badges = [[], [], [], ["upscaled"], ["letterboxed"], ["near_duplicate"], ["vfr"]]
    words = ["parked", "driving", "dusty", "golden hour", "night", "rain", "city street",
             "dirt road", "tailgate open", "chrome", "red", "white", "lifted", "close-up"]
    with conn:
        conn.executemany(
            "INSERT INTO jobs (id, kind, payload, state, attempts, progress, progress_msg,"
            " created_at, started_at, finished_at, updated_at) VALUES"
            " (?, 'clip.ingest', ?, 'succeeded', 1, 1.0, 'done', ?, ?, ?, ?)",
            ((i + 1, json.dumps({"clip_id": i + 1}), t0 + i, t0 + i, t0 + i + 2, t0 + i + 2)
             for i in range(n_clips)))

        def clip_rows():
            for i in range(n_clips):
                state = rng.choice(states)
                flags = [rng.choice(motions), *rng.choice(badges)]
                yield (i + 1, d.id, f"/src/trucks/part{i // 1000:03d}/truck_{i:06d}.mp4",
                       f"truck_{i:06d}-{i * 2654435761 % 16**8:08x}", state,
                       "decode failed: moov atom not found" if state == "error" else None,
                       None if state == "error" else "media/filmstrips/shared.jpg",
                       None if state == "error" else f"media/clips/truck_{i:06d}.mp4",
                       480, 848, 16.0, 41, 2.56, rng.random(), json.dumps(flags),
                       i + 1, t0 + i, t0 + i + 2)

        conn.executemany(
            "INSERT INTO clips (id, dataset_id, source_path, name, state, error, filmstrip_path,"
            " media_path, width, height, fps, frames, duration, motion, flags, job_id,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            clip_rows())

        def caption_rows():
            for i in range(n_clips):
                picked = ", ".join(rng.sample(words, 4))
                text = (f"TRUCKUGC, pickup truck {i % 5000}, {picked}, phone camera quality,"
                        " static shot")
                if i % 97 == 0:
                    text = "pickup truck parked, no trigger"  # lint: errors and duplicates
                yield (i + 1, text, "import", t0 + i)

        conn.executemany("INSERT INTO caption_versions (clip_id, text, source, created_at)"
                         " VALUES (?,?,?,?)", caption_rows())
        pods = []
        for p, (name, state, rate) in enumerate([("a100-1", "running", 1.89),
                                                 ("h100-spare", "stopped", 2.99),
                                                 ("l40s-cheap", "stopped", 0.79)]):
            conn.execute("INSERT INTO pods (id, name, provider, ssh_user, ssh_host, ssh_port,"
                         " state, cost_per_hour, policy, started_at, updated_at, info, setup)"
                         " VALUES (?,?,'ssh','root',?,22,?,?,?,?,?,?,?)",
                         (p + 1, name, f"10.0.0.{p + 1}", state, rate,
                          json.dumps({"on_finish": "stop", "on_failure": "keep"}),
                          now - 7200 if state == "running" else None, now,
                          json.dumps({"gpu": "NVIDIA A100 80GB", "disk_free_gb": 412}),
                          json.dumps({"trainers": {"musubi": {"musubi_dir": "/workspace/m"}},
                                      "models": ["/workspace/models/wan2.1_t2v_14B.safetensors"]})))
            pods.append(p + 1)
        conn.execute("INSERT INTO dataset_versions (id, dataset_id, content_hash, manifest,"
                     " created_at) VALUES (1, ?, 'abc123', '{}', ?)", (d.id, t0))
        train_job = n_clips + 1
        conn.execute("INSERT INTO jobs (id, kind, payload, state, attempts, progress, progress_msg,"
                     " created_at, started_at, updated_at) VALUES (?, 'train.run', ?, 'running',"
                     " 1, ?, 'training', ?, ?, ?)",
                     (train_job, json.dumps({"run_id": 1}), 0.8, now - 7000, now - 7000, now))
        total = int(n_steps * 1.2) or 1
        log = "\n".join(f"steps: {s}/{total} avr_loss=0.0{s % 97:02d}" for s in
                        range(max(0, n_steps - 20), n_steps))
        conn.execute("INSERT INTO runs (id, dataset_version_id, pod_id, name, config, state,"
                     " stage, step, total_steps, epoch, avr_loss, rate, remaining, log_tail,"
                     " job_id, created_at, started_at) VALUES (1, 1, ?, 'trucks-v1', '{}',"
                     " 'running', 'train', ?, ?, 12, 0.0712, 1.6, ?, ?, ?, ?, ?)",
                     (pods[0], n_steps, total, (total - n_steps) / 1.6, log, train_job,
                      now - 7200, now - 7000))

        def loss_rows():
            for s in range(1, n_steps + 1):
                base = 0.05 + 0.2 / (1 + s / 2000)
                yield (s, base + rng.gauss(0, 0.015), now - (n_steps - s) * 0.06)

        conn.executemany("INSERT INTO loss_points (run_id, step, avr_loss, at) VALUES (1,?,?,?)",
                         loss_rows())
        ck_every = max(1, n_steps // max(1, n_ckpts))
        for c in range(n_ckpts):
            conn.execute("INSERT INTO checkpoints (id, run_id, remote_path, local_path, step,"
                         " epoch, state, name, size, created_at) VALUES (?,1,?,?,?,?,?,?,?,?)",
                         (c + 1, f"/workspace/out/trucks-v1-e{c + 1:04d}.safetensors",
                          f"downloads/trucks-v1-e{c + 1:04d}.safetensors" if c % 3 == 0 else None,
                          (c + 1) * ck_every, c + 1, "local" if c % 3 == 0 else "remote",
                          f"trucks-v1-e{c + 1:04d}", 306_000_000, t0 + c * 3600))
            conn.execute("INSERT INTO loras (id, name, checkpoint_id, trigger, created_at)"
                         " VALUES (?,?,?,'TRUCKUGC',?)",
                         (c + 1, f"trucks-v1-e{c + 1:04d}", c + 1, t0 + c * 3600))
        gen_job0 = train_job + 1
        conn.executemany(
            "INSERT INTO jobs (id, kind, payload, state, attempts, progress, created_at,"
            " finished_at, updated_at) VALUES (?, 'gen.run', ?, 'succeeded', 1, 1.0, ?, ?, ?)",
            ((gen_job0 + g, json.dumps({"generation_id": g + 1}), now - 3600 + g,
              now - 3500 + g, now - 3500 + g) for g in range(n_gens)))
        for g in range(n_gens):
            (outputs / f"gen_{g + 1:05d}.strip.jpg").write_bytes(strip_bytes)

        def gen_rows():
            for g in range(n_gens):
                ck = 1 + g % max(1, n_ckpts)
                ok = g % 23 != 0
                checks = {"ok": ok, "problems": [] if ok else ["frozen frames 12-40"]}
                yield (g + 1, f"sw{g // 24:04d}", ck, ck,
                       "fal-ai/wan/v2.2-a14b/text-to-video/lora", (0.6, 0.8, 1.0)[g % 3],
                       1000 + g * 7919, "completed", f"outputs/gen_{g + 1:05d}.mp4",
                       json.dumps(checks), 95.0 + g % 60, 0.4,
                       f"TRUCKUGC, pickup truck {g % 40} on a {rng.choice(words)}", d.id,
                       gen_job0 + g, now - 3600 + g, now - 3500 + g)

        conn.executemany(
            "INSERT INTO generations (id, sweep_id, lora_id, checkpoint_id, endpoint, scale,"
            " seed, status, output_path, checks, inference_time, cost, prompt, dataset_id,"
            " job_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            gen_rows())

        def rating_rows():
            for g in range(n_gens):
                if g % 5 < 3:
                    yield (g + 1, 1 + g % 5, None, "[]", now - 3000 + g)
                if g % 5 == 0:
                    yield (g + 1, 4, ("approve", "needs_review", "retake")[g % 3],
                           json.dumps(["truck shape"] if g % 2 else []), now - 2000 + g)

        conn.executemany("INSERT INTO ratings (generation_id, stars, verdict, tags, created_at)"
                         " VALUES (?,?,?,?,?)", rating_rows())
        conn.executemany("INSERT INTO cost_entries (kind, generation_id, amount, detail, at)"
                         " VALUES ('generation', ?, 0.4, 'fal', ?)",
                         ((g + 1, now - 3500 + g) for g in range(n_gens)))
        conn.execute("INSERT INTO cost_entries (kind, pod_id, run_id, amount, detail, at)"
                     " VALUES ('pod_time', ?, 1, 3.78, 'pod time', ?)", (pods[0], now))
    conn.execute("ANALYZE")
    conn.close()
    return ws


# ---- what a frame is --------------------------------------------------------------------------

class FramePainted:
    """Records, per screen, the first frame the app writes (its _display) in which the
    screen's list is painted with rows. `find(screen)` names the screen and its list."""

    def __init__(self, app, find: Callable) -> None:
        self.app = app
        self.find = find
        self.painted: dict[str, float] = {}  # name -> perf_counter of that frame
        self.wall: dict[str, float] = {}  # name -> time.time() of that frame
        self.seen_rows: dict[str, int] = {}  # name -> frames written since rows were there
        self._display = app._display
        app._display = self.display

    def display(self, screen, renderable) -> None:
        self._display(screen, renderable)
        if renderable is None:
            return
        if self.app.is_headless and hasattr(renderable, "render_segments"):
            renderable.render_segments(self.app.console)  # what a terminal would be sent
        found = self.find(screen)
        if found is None or found[0] in self.painted:
            return
        name, widget = found
        if widget is None or not row_count(widget):
            return
        # rows are there: this frame holds them if the list was re-rendered in it (or the
        # whole screen was); otherwise the next frame does
        seen = self.seen_rows.get(name, 0)
        self.seen_rows[name] = seen + 1
        if seen or widget in screen._dirty_widgets or screen in screen._dirty_widgets:
            self.painted[name] = time.perf_counter()
            self.wall[name] = time.time()

    async def wait(self, name: str, timeout: float = WAIT_S) -> float | None:
        end = time.perf_counter() + timeout
        while name not in self.painted:
            if time.perf_counter() > end:
                return None
            await asyncio.sleep(0.001)
        return self.painted[name]


def lorad_lists() -> Callable:
    """`find` for FramePainted in LoradApp: the section of a screen and its list."""
    from tui.app import SECTIONS

    modes = {s.screen: s.mode for s in SECTIONS}

    def find(screen):
        mode = modes.get(type(screen))
        return None if mode is None else (mode, list_widget(screen, mode))

    return find


def list_widget(screen, mode: str):
    from textual.css.query import NoMatches

    try:
        return screen.query_one(LISTS[mode])
    except NoMatches:
        return None


def row_count(widget) -> int:
    count = getattr(widget, "row_count", None)  # DataTable; a RowList has rows (a Sequence)
    return count if isinstance(count, int) else len(widget.rows)


async def frame(pilot, screen) -> None:
    """What the screen's messages ask for, then the frame Textual makes of it (layout if
    needed, the dirty regions rendered and, via FramePainted, encoded for a terminal), without
    waiting for the frame timer."""
    await pilot._wait_for_screen()
    screen._on_timer_update()


def list_lines(widget) -> None:
    for y in range(widget.size.height):
        widget.render_line(y)


class Swallow:
    """Holds the highlight messages a list posts during the key's action, so the screen's
    handler runs once, inside the measure, and not again from the message queue."""

    def __init__(self, widget) -> None:
        self.widget = widget
        self.held: list = []

    def __enter__(self) -> Swallow:
        post = self.widget.post_message

        def held(message):
            if type(message).__name__ in ("Highlighted", "RowHighlighted", "CellHighlighted"):
                self.held.append(message)
                return True
            return post(message)

        self.widget.post_message = held
        return self

    def __exit__(self, *exc) -> None:
        del self.widget.post_message


async def react(screen, messages: list) -> None:
    for message in messages:
        handler = getattr(screen, message.handler_name, None)
        if handler is not None:
            result = handler(message)
            if inspect.isawaitable(result):
                await result


def cursor_down(widget) -> None:
    widget.action_cursor_down()


def to_top(widget) -> None:
    if hasattr(widget, "set_cursor"):
        widget.set_cursor(0)
    else:
        widget.move_cursor(row=0, animate=False)


async def settle(app, pilot, timeout: float = WAIT_S) -> None:
    """Until no worker runs (their results were shown: call_from_thread waits for that), the
    messages left on the screen were handled and the frame they ask for was made (layout
    included). Pilot.pause would add its 20 ms idle detection."""
    from textual.worker import WorkerState

    end = time.perf_counter() + timeout
    while any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
        if time.perf_counter() > end:
            break
        await asyncio.sleep(0.001)
    await frame(pilot, app.screen)


@dataclass
class Moves:
    frame: list[float] = field(default_factory=list)
    list_: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)


async def measure_moves(app, pilot, screen, widget, moves: int, *, handler: bool) -> Moves:
    out = Moves()
    # list only: the action and the list's visible lines
    to_top(widget)
    await settle(app, pilot)
    for _ in range(moves):
        with Swallow(widget) as held:
            t = time.perf_counter()
            cursor_down(widget)
            list_lines(widget)
            out.list_.append(time.perf_counter() - t)
        if handler:
            await react(screen, held.held)
        await settle(app, pilot)
    # the frame: action, the screen's handler, the frame; then until settled
    to_top(widget)
    await settle(app, pilot)
    for _ in range(moves):
        with Swallow(widget) as held:
            t = time.perf_counter()
            cursor_down(widget)
        if handler:
            await react(screen, held.held)
        await frame(pilot, screen)
        out.frame.append(time.perf_counter() - t)
        await settle(app, pilot)
        out.settle.append(time.perf_counter() - t)
    return out


class ReadTimes:
    """While in effect: the screen's load() (worker thread) and show() (event loop) timed, and
    how many loads ran at once (a newer read cancels an older one, which still runs on)."""

    def __init__(self, screen) -> None:
        self.screen = screen
        self.load: list[float] = []
        self.show: list[float] = []
        self.started = 0
        self.active = 0
        self.most = 0
        self.lock = threading.Lock()

    def __enter__(self) -> ReadTimes:
        load, show = self.screen.load, self.screen.show

        def timed_load(conn):
            with self.lock:
                self.started += 1
                self.active += 1
                self.most = max(self.most, self.active)
            t = time.perf_counter()
            try:
                return load(conn)
            finally:
                self.load.append(time.perf_counter() - t)
                with self.lock:
                    self.active -= 1

        def timed_show(data):
            t = time.perf_counter()
            try:
                return show(data)
            finally:
                self.show.append(time.perf_counter() - t)

        self.screen.load, self.screen.show = timed_load, timed_show
        return self

    def __exit__(self, *exc) -> None:
        del self.screen.load, self.screen.show


@dataclass
class Reloads:
    load: list[float] = field(default_factory=list)
    show: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)


async def measure_reloads(app, pilot, screen, n: int) -> Reloads:
    out = Reloads()
    with ReadTimes(screen) as times:
        for _ in range(n):
            t = time.perf_counter()
            screen.reload()
            await settle(app, pilot)
            out.settle.append(time.perf_counter() - t)
    out.load, out.show = times.load, times.show
    return out


@dataclass
class Live:
    keys: list[float]
    started: int  # reads started
    shown: int  # reads shown
    most: int  # reads at once, at most
    full_gc: list[float]  # pauses of Python's full (generation 2) collections


class FullCollections:
    """Times Python's generation-2 garbage collections: each one walks every object the
    process keeps (100,000 rows of a list are hundreds of thousands), with every thread
    stopped."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._t)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)


async def measure_live(app, pilot, screen, widget, ws, seconds: float,
                       interval: float = LIVE_INTERVAL) -> Live:
    """A running run as the daemon follows it: a loss point and the run's step committed every
    `interval` s (its log is read every second), so the store watcher reloads the screen on
    each. Meanwhile down is pressed every 0.1 s, each measured from when it was due (a key
    that arrives while show() holds the event loop waits for it) to its frame."""
    from lorad.core import store

    stop = threading.Event()

    def writer() -> None:
        conn = store.connect(ws.db_path, migrate=False)
        try:
            step = conn.execute("SELECT MAX(step) FROM loss_points WHERE run_id = 1"
                                ).fetchone()[0] or 0
            while not stop.wait(interval):
                step += 1
                conn.execute("BEGIN")
                conn.execute("INSERT OR REPLACE INTO loss_points (run_id, step, avr_loss, at)"
                             " VALUES (1, ?, 0.07, ?)", (step, time.time()))
                conn.execute("UPDATE runs SET step = ?, avr_loss = 0.07 WHERE id = 1", (step,))
                conn.execute("COMMIT")
        finally:
            conn.close()

    keys: list[float] = []
    to_top(widget)
    await settle(app, pilot)
    thread = threading.Thread(target=writer, name="bench-live-writer", daemon=True)
    with ReadTimes(screen) as times, FullCollections() as collections:
        thread.start()
        start = time.perf_counter()
        due = start
        while due < start + seconds:
            due += 0.1
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            with Swallow(widget) as held:
                cursor_down(widget)
            await react(screen, held.held)
            await frame(pilot, screen)
            keys.append(time.perf_counter() - due)
        stop.set()
        thread.join()
        end = time.perf_counter() + WAIT_S  # replaced reads run on: not into the next screen
        while times.active and time.perf_counter() < end:
            await asyncio.sleep(0.01)
        await settle(app, pilot)
    return Live(keys, times.started, len(times.show), times.most, collections.pauses)


@dataclass
class ScreenResult:
    mode: str
    title: str
    rows: int
    open_s: float | None
    moves: Moves | None = None
    reloads: Reloads | None = None
    live: Live | None = None
    base_open_s: float | None = None
    base: Moves | None = None


async def lorad_run(ws, args, problems: list[str]) -> tuple[float | None, list[ScreenResult],
                                                               dict[str, tuple]]:
    """In-process start, then each screen: open, moves, reloads. Returns the start, the
    results and each screen's list rows and column titles (for the baseline)."""
    from tui.app import SECTIONS, LoradApp

    t0 = time.perf_counter()
    app = LoradApp(ws)
    probe = FramePainted(app, lorad_lists())
    results: list[ScreenResult] = []
    copies: dict[str, tuple] = {}
    async with app.run_test(size=SIZE) as pilot:
        first = await probe.wait(SECTIONS[0].mode)
        start = None if first is None else first - t0
        if first is None:
            problems.append(f"in-process start: the {SECTIONS[0].title} list was not painted"
                            f" with rows within {WAIT_S:.0f} s")
        for section in SECTIONS:
            opened = start
            if section is not SECTIONS[0]:
                t = time.perf_counter()
                await pilot.press(section.key)
                at = await probe.wait(section.mode)
                opened = None if at is None else at - t
            screen = app.screen
            widget = list_widget(screen, section.mode)
            if opened is None or widget is None:
                problems.append(f"{section.title}: its list was not painted with rows within"
                                f" {WAIT_S:.0f} s")
                results.append(ScreenResult(section.mode, section.title, 0, None))
                continue
            await settle(app, pilot)
            r = ScreenResult(section.mode, section.title, row_count(widget), opened)
            r.moves = await measure_moves(app, pilot, screen, widget, args.moves, handler=True)
            r.reloads = await measure_reloads(app, pilot, screen, args.reloads)
            if args.live > 0:
                r.live = await measure_live(app, pilot, screen, widget, ws, args.live)
            results.append(r)
            copies[section.mode] = table_copy(widget)
    return start, results, copies


def table_copy(widget) -> tuple[list[str], Sequence]:
    """The list's column titles and rows, for the DataTable. A RowList's rows as they are (its
    screen keeps them anyway): their cells are made when the DataTable gets them, so 100,000
    rows of rich cells do not sit in this process (and in every garbage collection) while the
    other screens are measured."""
    from textual.widgets import DataTable

    if isinstance(widget, DataTable):
        titles = [str(c.label) for c in widget.columns.values()]
        return titles, [widget.get_row_at(i) for i in range(widget.row_count)]
    return [c.title for c in widget.columns], widget.rows


async def datatable_run(titles: list[str], rows: Sequence,
                        moves: int) -> tuple[float | None, Moves]:
    """The stock DataTable with the same rows: add them, wait for them painted, same moves."""
    rows = list(rows)  # a RowList's LazyRows make their cells here, before the clock starts
    from textual.app import App
    from textual.widgets import DataTable

    class Stock(App):
        def compose(self):
            yield DataTable(cursor_type="row", id="stock")

    app = Stock()
    probe = FramePainted(app, lambda screen: ("stock", screen.query_one(DataTable)))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)
        await pilot.pause()
        t = time.perf_counter()
        table.add_columns(*titles)
        table.add_rows(rows)
        at = await probe.wait("stock")
        opened = None if at is None else at - t
        table.focus()
        result = await measure_moves(app, pilot, app.screen, table, moves, handler=False)
    return opened, result


# ---- the start process ------------------------------------------------------------------------

def child(ws_path: str) -> int:
    """`lorad tui --no-daemon`, headless: prints one JSON line (times are time.time())."""
    imported_at = time.time()
    from lorad.core.workspace import find
    from tui.app import SECTIONS, LoradApp

    out: dict = {"imports_s": time.time() - imported_at, "imported": time.time(), "open_s": {},
                 "problems": []}
    first = SECTIONS[0].screen  # its first read and show, timed (this process only)
    load, show = first.load, first.show

    def timed_load(self, conn):
        out.setdefault("read_start", time.time())
        try:
            return load(self, conn)
        finally:
            out.setdefault("read_end", time.time())

    def timed_show(self, data):
        try:
            return show(self, data)
        finally:
            out.setdefault("shown", time.time())

    first.load, first.show = timed_load, timed_show
    ws = find(ws_path)
    ws.connect().close()
    app = LoradApp(ws)
    probe = FramePainted(app, lorad_lists())

    async def auto(pilot) -> None:
        try:
            if await probe.wait(SECTIONS[0].mode) is None:
                out["problems"].append("the first list was never painted with rows")
                return
            out["first_paint"] = probe.wall[SECTIONS[0].mode]
            for section in SECTIONS[1:]:
                t = time.perf_counter()
                await pilot.press(section.key)
                at = await probe.wait(section.mode)
                if at is None:
                    out["problems"].append(f"{section.title}: never painted with rows")
                    continue
                out["open_s"][section.mode] = at - t
                await pilot.pause(0.2)
            out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out["rss_now_mb"] = rss_now_mb()
        finally:
            app.exit()

    app.run(headless=True, size=SIZE, auto_pilot=auto)
    print("BENCH " + json.dumps(out), flush=True)
    return 0


def rss_now_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_process(ws, problems: list[str]) -> dict:
    t0 = time.time()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           str(ws.root)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        problems.append(f"start process exited {done.returncode}: "
                        f"{(done.stderr or done.stdout).strip()[-600:]}")
        return {}
    out = json.loads(line[6:])
    problems += [f"start process: {p}" for p in out.get("problems", [])]
    out["t0"] = t0
    if "first_paint" in out:
        out["start_s"] = out["first_paint"] - t0
    return out


# ---- the report -------------------------------------------------------------------------------

def start_parts(out: dict) -> str:
    """Where the start process's time went: interpreter and imports, until the first read,
    the read (worker), its show, the frame."""
    marks = [("interpreter and imports", "imported"), ("app to its first read", "read_start"),
             ("read", "read_end"), ("show", "shown"), ("frame", "first_paint")]
    if "t0" not in out or any(key not in out for _label, key in marks):
        return f"imports {secs(out.get('imports_s'))} s"
    parts, before = [], out["t0"]
    for label, key in marks:
        parts.append(f"{label} {out[key] - before:.2f}")
        before = out[key]
    return ", ".join(parts)


def ms(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, max in ms."""
    if not values:
        return (float("nan"),) * 3
    v = sorted(x * 1000 for x in values)
    return statistics.median(v), v[max(0, int(round(len(v) * 0.95)) - 1)], v[-1]


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b != b or a != a or b <= 0:
        return "-"
    return f"{a / b:.2f}"


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def machine_info() -> list[str]:
    import textual

    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return [f"machine: {cpus} CPUs ({usable} usable), {platform.machine()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()} ({sys.executable})",
            f"textual {textual.__version__}, terminal {SIZE[0]}x{SIZE[1]} (headless);"
            f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes"
            " on these CPUs skew every figure)"]


def run(args: argparse.Namespace, work: Path) -> list[str]:
    problems: list[str] = []
    t = time.perf_counter()
    ws = make_workspace(work, args.clips, args.gens, args.steps, args.checkpoints)
    built = time.perf_counter() - t
    child_out = start_process(ws, problems)
    t = time.perf_counter()
    import tui.app  # noqa: F401 - imported before the in-process start is timed

    imports = time.perf_counter() - t
    start, results, copies = asyncio.run(lorad_run(ws, args, problems))
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in results:
        if r.mode in copies:
            titles, rows = copies.pop(r.mode)
            r.base_open_s, r.base = asyncio.run(datatable_run(titles, rows, args.moves))

    misses: list[str] = []
    lines = ["", f"lorad TUI benchmark: {args.clips} clips (captioned), {args.gens} generations,"
             f" a running run of {args.steps} steps with {args.checkpoints} checkpoints;"
             f" {args.moves} moves per screen", *machine_info(),
             f"workspace built in {built:.1f} s; in-process imports of tui.app {imports:.2f} s",
             ""]
    cstart = child_out.get("start_s")
    lines += [f"{'start [target < ' + str(TARGET_START_S) + ' s]':44} {'s':>8}",
              f"{'  new process to Clips rows painted':44} {secs(cstart):>8}"
              f"   ({start_parts(child_out)})",
              f"{'  in process, LoradApp(ws) to rows painted':44} {secs(start):>8}"]
    if cstart is None or cstart >= TARGET_START_S:
        misses.append(f"start {secs(cstart)} s in a new process (target < {TARGET_START_S} s)")
    lines += ["", f"{'open screen (digit key to rows painted)':44} {'rows':>7} {'new proc s':>11}"
              f" {'in-proc s':>10} {'DataTable s':>12} {'ratio':>6}"]
    for r in results:
        other = child_out.get("open_s", {}).get(r.mode) if r.mode != "clips" else cstart
        lines.append(f"  {r.title:42} {r.rows:>7} {secs(other):>11} {secs(r.open_s):>10}"
                     f" {secs(r.base_open_s):>12} {ratio(r.open_s, r.base_open_s):>6}")
    lines += ["", f"{f'key down, ms [target p95 < {TARGET_P95_MS:g}]':56} {'p50':>8} {'p95':>8}"
              f" {'max':>8} {'DT p50':>8} {'DT p95':>8} {'DT max':>8} {'p95 ratio':>9}"]
    for r in results:
        if r.moves is None:
            continue
        base = r.base or Moves()
        for label, ours, theirs in (("frame", r.moves.frame, base.frame),
                                    ("list", r.moves.list_, base.list_),
                                    ("settle", r.moves.settle, base.settle)):
            a, b = ms(ours), ms(theirs)
            lines.append(f"  {r.title + ' ' + label:54} {a[0]:8.2f} {a[1]:8.2f} {a[2]:8.2f}"
                         f" {b[0]:8.2f} {b[1]:8.2f} {b[2]:8.2f} {ratio(a[1], b[1]):>9}")
        p95 = ms(r.moves.frame)[1]
        if not p95 < TARGET_P95_MS:
            misses.append(f"{r.title}: key-to-frame p95 {p95:.1f} ms (target < "
                          f"{TARGET_P95_MS:g} ms)")
        settle95 = ms(r.moves.settle)[1]
        if not settle95 < TARGET_P95_MS:
            misses.append(f"{r.title}: key until settled p95 {settle95:.1f} ms (the workers the"
                          " key starts; same target)")
    lines += ["", f"{'store change (reload), ms':44} {'load p50':>9} {'load max':>9}"
              f" {'show p50':>9} {'show max':>9} {'settle p50':>11}   (show blocks keys)"]
    for r in results:
        if r.reloads is None:
            continue
        a, b, c = ms(r.reloads.load), ms(r.reloads.show), ms(r.reloads.settle)
        lines.append(f"  {r.title:42} {a[0]:9.1f} {a[2]:9.1f} {b[0]:9.1f} {b[2]:9.1f}"
                     f" {c[0]:11.1f}")
        if not b[2] < TARGET_P95_MS:
            misses.append(f"{r.title}: a reload blocks keys for {b[2]:.0f} ms (show() on the event"
                          " loop; every commit to the store while this screen is shown)")
    if any(r.live for r in results):
        lines += ["", f"{f'live: a commit every {LIVE_INTERVAL:g} s, down every 0.1 s, ms':44}"
                  f" {'p50':>9} {'p95':>9} {'max':>9} {'reads':>6} {'shown':>6} {'at once':>8}"
                  f" {'full gc':>8} {'gc max':>7}"]
    for r in results:
        if r.live is None:
            continue
        a = ms(r.live.keys)
        lines.append(f"  {r.title:42} {a[0]:9.1f} {a[1]:9.1f} {a[2]:9.1f} {r.live.started:6d}"
                     f" {r.live.shown:6d} {r.live.most:8d} {len(r.live.full_gc):8d}"
                     f" {max(r.live.full_gc, default=0) * 1000:7.0f}")
        if not a[1] < TARGET_P95_MS:
            misses.append(f"{r.title}: key-to-frame p95 {a[1]:.0f} ms while the store changes"
                          f" every {LIVE_INTERVAL:g} s")
        if r.live.started and not r.live.shown:
            misses.append(f"{r.title}: {r.live.started} reads while the store changed, none"
                          " shown (each newer read replaced the one before it finished)")
    rss = child_out.get("maxrss_mb")
    lines += ["", f"{'memory [target < ' + str(TARGET_RSS_MB) + ' MB]':44} {'MB':>8}",
              f"{'  new process, peak RSS after every screen':44} "
              f"{'-' if rss is None else f'{rss:8.0f}'}"
              f"   (RSS at the end {child_out.get('rss_now_mb') or 0:.0f} MB)",
              f"{'  this process (workspace build, both apps)':44} {main_rss:8.0f}"]
    if rss is None or rss >= TARGET_RSS_MB:
        misses.append(f"memory: peak RSS {'-' if rss is None else f'{rss:.0f}'} MB (target < "
                      f"{TARGET_RSS_MB:g} MB)")
    lines += ["", "targets missed:" if misses else "targets: all met",
              *(f"  {m}" for m in misses), *problem_lines(problems, 40)]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--clips", type=int, default=100_000, help="clips in the dataset")
    parser.add_argument("--gens", type=int, default=1000, help="completed generations")
    parser.add_argument("--steps", type=int, default=100_000, help="loss points of the run")
    parser.add_argument("--checkpoints", type=int, default=36, help="checkpoints of the run")
    parser.add_argument("--moves", type=int, default=200, help="down presses per screen")
    parser.add_argument("--reloads", type=int, default=5, help="store-change reloads per screen")
    parser.add_argument("--live", type=float, default=10.0,
                        help="seconds per screen with a commit every second (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--child", metavar="WS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (min(args.clips, args.gens, args.steps, args.moves) < 1
                               or args.checkpoints < 1 or args.reloads < 1 or args.live < 0):
        parser.error("every count must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child)
    return run_in_tempdir(run, args, "lorad-bench-tui-")


if __name__ == "__main__":
    sys.exit(main())
