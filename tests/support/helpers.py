"""Small helpers shared by the tests."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 20.0, interval: float = 0.02, message: str = ""):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


def run_jobs(ws, timeout: float = 180.0, until=None) -> None:
    """Run the daemon's job loop in this process until no job is queued or running (or, with
    `until`, until `until(conn)` holds), then stop it as SIGTERM would."""
    import asyncio

    from lorad.core import daemon, handlers, jobs

    handlers.load_modules()

    async def main() -> None:
        d = daemon.Daemon(ws)
        task = asyncio.create_task(d.serve())
        conn = ws.connect()
        deadline = time.monotonic() + timeout
        try:
            while True:
                counts = jobs.counts_by_state(conn)
                if until(conn) if until else not counts["queued"] and not counts["running"]:
                    break
                if task.done():
                    task.result()
                if time.monotonic() > deadline:
                    raise AssertionError(f"jobs still pending after {timeout} s: {counts}")
                await asyncio.sleep(0.05)
        finally:
            conn.close()
            d.request_stop()
            await task

    asyncio.run(main())


async def pilot_until(pilot, condition, timeout: float = 30.0, message="condition"):
    """`wait_for` for Pilot tests: lets the app run between checks. `message` may be a
    callable, called on a timeout (`lambda: dump(app)` shows the terminal as it was then).
    The timeout is generous: on 2 cores shared with ffmpeg-heavy tests in the other worker a
    screen's read thread can take seconds; a passing test waits only as long as it needs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        await pilot.pause(0.02)


WAN22 = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


def queue_generation(conn, **kw) -> int:
    """A queued Wan 2.2 generation with the `truck` fixture's LoRA."""
    from lorad.generation import generations

    args = {"lora": "truck-e8", "scale": 0.8, "seed": 7, "extra": {"num_frames": 17}}
    args.update(kw)
    return generations.create(conn, args.pop("endpoint", WAN22), "TRK, a parked truck", **args)


async def go_to(app, pilot, title: str, screen_type, rows: int | None = None):
    """Open a screen through the command palette ("Go to TITLE"), as a person would, and
    wait for it (and for `rows` rows in its list); returns the screen."""
    await pilot.press("ctrl+p")
    await pilot.press(*f"Go to {title}", "enter")
    await pilot_until(pilot, lambda: isinstance(app.screen, screen_type), message=title)
    if rows is not None:
        from tui.widgets.rowlist import RowList

        table = app.screen.query_one(RowList)
        await pilot_until(pilot, lambda: len(table.rows) == rows, message=f"{rows} rows")
    return app.screen


# ---- what the terminal shows (Pilot tests assert on it, not only on the data behind it) ----

# Issue 15: every fixed item is driven at 80x24 and 120x36.
SIZES = [(80, 24), (120, 36)]
SIZE_IDS = ["80x24", "120x36"]


def screen_strips(app) -> list:
    """The terminal as the person sees it now: one Strip (text segments with their styles) per
    line, the active screen composed over the screens under it (a dialog and what it covers).
    Textual has no public call for this; its compositor is what writes to the terminal."""
    return list(app.screen._compositor.render_strips())


def screen_lines(app) -> list[str]:
    return [strip.text for strip in screen_strips(app)]


def widget_strips(app, widget) -> list:
    """What the terminal shows of `widget`: the lines of the part of its region in sight (cut
    to it, cell by cell; none when it is scrolled or pushed out of sight)."""
    from textual.errors import NoWidget

    try:
        r = widget.screen.find_widget(widget).visible_region
    except NoWidget:
        return []
    return [strip.crop(r.x, r.right) for strip in screen_strips(app)[r.y:r.bottom]]


def widget_lines(app, widget) -> list[str]:
    return [strip.text for strip in widget_strips(app, widget)]


def footer_line(app) -> str:
    """The footer: the terminal's last line."""
    return screen_lines(app)[-1]


def styles_of(strip, word: str) -> list:
    """The styles the visible characters of the first `word` in a line are drawn with (pad
    `word` with spaces to find it as a cell of its own: " error " is not "clip_error_1")."""
    text = strip.text
    start = text.find(word)
    assert start >= 0, f"{word!r} is not in {text!r}"
    at, styles = 0, []
    for segment in strip:
        for offset, char in enumerate(segment.text):
            if start <= at + offset < start + len(word) and not char.isspace():
                styles.append(segment.style)
        at += len(segment.text)
    return styles


def looks_red(app, style) -> bool:
    """Whether text in `style` is drawn red (an error), whatever the theme makes of "red"."""
    if style is None or style.color is None:
        return False
    r, g, b = style.color.get_truecolor(app.ansi_theme)
    return r >= 150 and r > 2 * g and r > 1.5 * b


def dump(app) -> str:
    """The terminal as text, for an assertion's message."""
    return "\n".join(f"|{line.rstrip()}" for line in screen_lines(app))


def stop_midway(ws, conn, run_id: int, at_step: int, *, timeout: float = 90.0,
                message: str = "far enough"):
    """Run the jobs in a thread until the run reaches `at_step`, stop it the way a person
    does (`runs.request_stop`), and wait for the jobs to end; returns the stopped run."""
    import threading

    from lorad.training import runs

    worker = threading.Thread(target=run_jobs, args=(ws, timeout + 60))
    worker.start()
    try:
        wait_for(lambda: (runs.get_by_id(conn, run_id).step or 0) >= at_step, timeout=timeout,
                 message=message)
        runs.request_stop(conn, run_id)
    finally:
        worker.join(timeout + 70)
    return runs.get_by_id(conn, run_id)


def printed_steps(run, parser) -> set[int]:
    """Every step the train stage's log on the (loopback) pod printed, as the trainer's
    parser reads it."""
    from pathlib import Path

    printed = Path(run.remote_dir, "logs", "train.log").read_bytes() + b"\n"
    return {e.step for e in parser.feed(printed) if getattr(e, "step", 0) and
            type(e).__name__ == "Progress"}


def alive(pid: int) -> bool:
    """A process that still runs (not a zombie waiting for its parent)."""
    import os
    from pathlib import Path

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
