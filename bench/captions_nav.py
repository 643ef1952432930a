"""Moving through 1,000 captioned clips in the Captions screen: the cost of one keypress.

Measured inside a headless Textual app (Pilot), per move: the key's action (cursor move, the
caption and lint of the new clip shown) plus rendering every visible line of the list and the
editor, i.e. the work of one frame. The baseline, in the same run, is the same move in the stock
DataTable holding the same 1,000 rows (cursor move plus rendering its visible lines), the widget
the Captions list replaced.

    .venv/bin/python bench/captions_nav.py [--clips 1000] [--moves 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lorad.core import workspace  # noqa: E402
from lorad.media import datasets


def make_workspace(root: Path, n: int):
    ws = workspace.init(root / "ws")
    conn = ws.connect()
    d = datasets.create(conn, "bench", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")
    now = time.time()
    with conn:
        for i in range(n):
            cur = conn.execute(
                "INSERT INTO clips (dataset_id, source_path, name, state, frames, fps, width,"
                " height, flags, created_at, updated_at) VALUES (?,?,?,'ready',41,16,480,848,"
                "'[]',?,?)", (d.id, f"/src/{i}.mp4", f"clip_{i:05d}-abcdef12", now, now))
            conn.execute("INSERT INTO caption_versions (clip_id, text, source, created_at)"
                         " VALUES (?,?,'import',?)",
                         (cur.lastrowid, f"TRUCKUGC, truck {i} parked in a dry field at golden "
                          "hour, props on the tailgate, phone camera quality, static shot", now))
    conn.close()
    return ws


def frame_lines(widget) -> None:
    for y in range(widget.size.height):
        widget.render_line(y)


async def lorad_moves(ws, moves: int) -> list[float]:
    from tui.app import LoradApp
    from tui.screens.captions import CaptionEditor
    from tui.widgets.rowlist import RowList

    app = LoradApp(ws, refresh_interval=10)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("2")
        screen = app.screen
        table = screen.query_one(RowList)
        while len(table.rows) < 1000:
            await pilot.pause(0.05)
        editor = screen.query_one(CaptionEditor)
        times = []
        for _ in range(moves):
            t = time.perf_counter()
            table.action_cursor_down()
            screen.show_current()
            frame_lines(table)
            frame_lines(editor)
            times.append(time.perf_counter() - t)
            await pilot.pause()
        return times


async def datatable_moves(n: int, moves: int) -> list[float]:
    from textual.app import App
    from textual.widgets import DataTable

    class Bench(App):
        def compose(self):
            yield DataTable(cursor_type="row")

    app = Bench()
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.query_one(DataTable)
        table.add_columns("id", "name", "state", "lint", "caption")
        table.add_rows([(str(i), f"clip_{i:05d}-abcdef12", "ready", "✓",
                         f"TRUCKUGC, truck {i} parked in a dry field at golden hour, props on "
                         "the tailgate, phone camera quality, static shot") for i in range(n)])
        await pilot.pause(0.5)
        times = []
        for _ in range(moves):
            t = time.perf_counter()
            table.action_cursor_down()
            frame_lines(table)
            times.append(time.perf_counter() - t)
            await pilot.pause()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = make_workspace(Path(tmp), args.clips)
        ours = asyncio.run(lorad_moves(ws, args.moves))
        base = asyncio.run(datatable_moves(args.clips, args.moves))

    def row(name, t):
        ms = sorted(x * 1000 for x in t)
        return (name, statistics.median(ms), ms[int(len(ms) * 0.95) - 1], ms[-1])

    rows = [row("Captions screen (RowList + editor + lint)", ours),
            row("stock DataTable, list only", base)]
    print(f"one move through {args.clips} captioned clips, {args.moves} moves, 160x45")
    print(f"{'':44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, p50, p95, mx in rows:
        print(f"{name:44} {p50:8.2f} {p95:8.2f} {mx:8.2f}")
    print(f"ratio lorad/DataTable p50: {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
