"""Pilot tests of the Clips screen: navigation, review keys, filter, bulk marks, 10k rows."""

from __future__ import annotations

import json
import time

import pytest
from helpers import SIZE_IDS, SIZES, dump, looks_red, styles_of, widget_lines, widget_strips
from helpers import pilot_until as until

from lorad.media import clips, datasets
from tui.app import LoradApp
from tui.screens.clips import ClipsScreen
from tui.widgets.rowlist import RowList


def insert_clips(conn, dataset_id: int, n: int, *, state: str = "ready",
                 flags: list[str] | None = None, error: str | None = None) -> list[int]:
    now = time.time()
    ids = []
    with conn:
        for i in range(n):
            cur = conn.execute(
                "INSERT INTO clips (dataset_id, source_path, name, state, width, height, fps,"
                " frames, flags, error, created_at, updated_at) VALUES (?,?,?,?,480,848,16,41,"
                "?,?,?,?)",
                (dataset_id, f"/src/{state}/{len(ids)}-{now}-{i}.mp4", f"clip_{state}_{i}-{now}",
                 state, json.dumps(flags or ["static"]), error, now, now))
            ids.append(cur.lastrowid)
    return ids


@pytest.fixture
def dataset(conn):
    return datasets.create(conn, "trucks", "wan21-t2v-480p-portrait")



def states(conn, ids):
    return [clips.get(conn, i).state for i in ids]


async def test_navigate_and_review_persist(ws, conn, dataset):
    ids = insert_clips(conn, dataset.id, 5)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ClipsScreen)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 5, message="rows")
        assert table.current_key == ids[0]
        await pilot.press("a")  # approve, cursor moves on
        await until(pilot, lambda: states(conn, ids[:1]) == ["approved"], message="approve")
        assert table.current_key == ids[1]
        await pilot.press("j", "x")  # down to the third, reject it
        await until(pilot, lambda: states(conn, [ids[2]]) == ["rejected"], message="reject")
        await pilot.press("k", "k", "k")  # up past the top stays at the top
        assert table.current_key == ids[0]
        await pilot.press("u")  # undo the approval
        await until(pilot, lambda: states(conn, [ids[0]]) == ["ready"], message="undo")
        await pilot.press("G")
        assert table.current_key == ids[-1]
        # The table follows the store: a state change elsewhere shows up.
        clips.set_review(conn, [ids[3]], "approved")
        await until(pilot, lambda: str(table.rows[3][3]) == "approved", message="redraw")


async def test_bulk_mark_then_approve(ws, conn, dataset):
    ids = insert_clips(conn, dataset.id, 6)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 6)
        await pilot.press("m", "m", "j", "m")  # marks 1, 2 and 4
        assert table.selected_keys() == [ids[0], ids[1], ids[3]]
        await pilot.press("a")
        await until(pilot, lambda: states(conn, ids) == ["approved", "approved", "ready",
                                                         "approved", "ready", "ready"])
        assert not table.marked
        await pilot.press("M", "x")
        await until(pilot, lambda: set(states(conn, ids)) == {"rejected"}, message="all")


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_error_clips_cannot_be_approved_and_say_why(ws, conn, dataset, size):
    bad = insert_clips(conn, dataset.id, 1, state="error",
                       error="too short: 1.2 s at 16 fps gives 19 frames; this profile needs 41")
    good = insert_clips(conn, dataset.id, 1)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2)
        detail = screen.query_one("#clips-detail")
        # the reason, in sight beside the list, in red
        await until(pilot, lambda: any("too short" in line for line in
                                       widget_lines(app, detail)), message="error shown")
        why = next(s for s in widget_strips(app, detail) if "too short" in s.text)
        assert all(looks_red(app, st) for st in styles_of(why, "too short")), dump(app)
        await pilot.press("M", "a")
        await until(pilot, lambda: any("1 skipped" in str(n.message)
                                       for n in app._notifications), message="toast")
        assert states(conn, bad + good) == ["error", "approved"]


async def test_filter_by_state_flag_and_text(ws, conn, dataset):
    insert_clips(conn, dataset.id, 3)
    pans = insert_clips(conn, dataset.id, 2, flags=["panning"])
    errs = insert_clips(conn, dataset.id, 1, state="error", error="no video stream")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 6)
        await pilot.press("slash")
        await pilot.press(*"flag:panning", "enter")
        await until(pilot, lambda: [table.key_of(r) for r in table.rows] == pans, message="flag")
        await pilot.press("slash", "ctrl+u")  # clear the box (Input's delete-to-start)
        await pilot.press(*"state:error", "enter")
        await until(pilot, lambda: [table.key_of(r) for r in table.rows] == errs, message="state")
        await pilot.press("escape")  # no marks: escape clears the filter
        await until(pilot, lambda: len(table.rows) == 6, message="cleared")
        await pilot.press("e")  # jump to the next clip in error
        assert table.current_key == errs[0]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_filter_in_force_is_in_sight(ws, conn, dataset, size):
    """What the list is filtered by, word for word (Rich markup ate `[...]` once)."""
    insert_clips(conn, dataset.id, 2)
    insert_clips(conn, dataset.id, 1, state="error", error="no video stream")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 3)
        await pilot.press("slash", *"state:error", "enter")
        await until(pilot, lambda: len(table.rows) == 1, message="filtered")
        summary = app.screen.query_one("#clips-summary")
        await until(pilot, lambda: "[1 shown" in widget_lines(app, summary)[0],
                    message="the summary")
        assert "[1 shown: state:error]" in widget_lines(app, summary)[0], dump(app)


async def test_ten_thousand_clips_load_and_navigate(ws, conn, dataset):
    insert_clips(conn, dataset.id, 10_000)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 10_000, timeout=30, message="10k rows")
        await pilot.press("G")
        assert table.cursor == 9_999
        assert table.scroll_offset.y > 9_000  # the last rows are on screen
        await pilot.press("pageup", "k", "g")
        assert table.cursor == 0 and table.scroll_offset.y == 0


async def test_play_uses_the_configured_player(ws, conn, dataset, tmp_path, monkeypatch):
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"x")
    (clip_id,) = insert_clips(conn, dataset.id, 1)
    conn.execute("UPDATE clips SET media_path = ? WHERE id = ?", (str(media), clip_id))
    ws.config_path.write_text('[tui]\nplayer = "true --flag"\n')
    played = []
    app = LoradApp(ws, refresh_interval=0.05)
    monkeypatch.setattr(app, "play", played.append)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.current is not None and screen.current.id == clip_id)
        await pilot.press("space")
        assert played == [["true", "--flag", str(media)]]


async def test_empty_workspace_says_what_to_do(ws):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        summary = app.screen.query_one("#clips-summary")
        await until(pilot, lambda: "N opens Setup" in str(summary.render()))
