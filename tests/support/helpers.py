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


async def pilot_until(pilot, condition, timeout: float = 10.0, message: str = "condition"):
    """`wait_for` for Pilot tests: lets the app run between checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
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
