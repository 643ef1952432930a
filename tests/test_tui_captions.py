"""Pilot tests of the Captions screen: edit keys, autosave on leave, lint as you type, speed."""

from __future__ import annotations

import pytest
from helpers import SIZE_IDS, SIZES, dump, screen_strips, styles_of, widget_strips
from helpers import pilot_until as until
from test_captions import add_clip

from lorad.captions import versions
from lorad.media import clips, datasets
from tui.app import LoradApp
from tui.screens.captions import CaptionEditor, CaptionsScreen
from tui.widgets.rowlist import RowList


@pytest.fixture
def ds(conn):
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")
    datasets.update_settings(conn, d.id, caption_rules={"banned_words": ["cinematic"]})
    return d


async def open_captions(app, pilot):
    await pilot.press("2")
    await until(pilot, lambda: isinstance(app.screen, CaptionsScreen), message="captions screen")
    return app.screen


def text_of(conn, clip_id):
    v = versions.current(conn, clip_id)
    return v.text if v else ""


async def test_edit_type_leave_autosaves_and_lint_follows_typing(ws, conn, ds):
    a = add_clip(conn, ds.id, "a", state="ready")
    b = add_clip(conn, ds.id, "b", state="ready")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2, message="rows")
        lint_panel = screen.query_one("#captions-lint")
        assert "no caption" in str(lint_panel.render())
        await pilot.press("enter")
        editor = screen.query_one(CaptionEditor)
        assert editor.has_focus and not editor.read_only
        await pilot.press("ctrl+t")  # the trigger goes first
        await pilot.press(*"red truck parked, cinematic")
        await until(pilot, lambda: "banned word 'cinematic'" in str(lint_panel.render()),
                    message="lint on typing")
        for _ in range(len(", cinematic")):
            await pilot.press("backspace")
        await pilot.press(*" in a dry field")
        await until(pilot, lambda: "no lint issues" in str(lint_panel.render()), message="clean")
        await pilot.press("escape")  # leave edit: autosave
        await until(pilot, lambda: text_of(conn, a) == "TRUCKUGC, red truck parked in a dry field",
                    message="autosave")
        assert table.has_focus and editor.read_only
        # save-and-next keeps editing on the next clip
        await pilot.press("enter", *"TRUCKUGC, blue truck by a fence at dusk", "ctrl+s")
        await until(pilot, lambda: text_of(conn, a).endswith("at dusk"), message="save-and-next")
        assert table.current_key == b and screen.editing_id == b
        await pilot.press(*"TRUCKUGC, green truck on gravel at noon", "escape")
        await until(pilot, lambda: text_of(conn, b) == "TRUCKUGC, green truck on gravel at noon")


async def test_undo_version_and_review_keys(ws, conn, ds):
    a = add_clip(conn, ds.id, "a", state="ready")
    versions.set_caption(conn, a, "TRUCKUGC, first version of the caption")
    versions.set_caption(conn, a, "TRUCKUGC, second version of the caption")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        editor = screen.query_one(CaptionEditor)
        await until(pilot, lambda: editor.text.startswith("TRUCKUGC, second"))
        await pilot.press("u")
        await until(pilot, lambda: text_of(conn, a).startswith("TRUCKUGC, first"), message="undo")
        await until(pilot, lambda: editor.text.startswith("TRUCKUGC, first"), message="shown")
        await pilot.press("a")
        await until(pilot, lambda: clips.get(conn, a).state == "approved", message="approve")


async def test_jump_to_lint_error_and_uncaptioned(ws, conn, ds):
    ids = [add_clip(conn, ds.id, n, state="ready") for n in "abcd"]
    versions.set_caption(conn, ids[0], "TRUCKUGC, a fine caption for this clip")
    versions.set_caption(conn, ids[1], "TRUCKUGC, a fine caption for that clip")
    versions.set_caption(conn, ids[2], "TRUCKUGC, [color] truck in a field somewhere")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 4)
        await pilot.press("n")
        assert table.current_key == ids[2]
        await pilot.press("w")
        assert table.current_key == ids[3]


async def test_moving_through_a_thousand_clips_shows_each_caption(ws, conn, ds):
    ids = []
    for n in range(1000):
        clip = add_clip(conn, ds.id, f"c{n:04d}", state="ready")
        conn.execute("INSERT INTO caption_versions (clip_id, text, source, created_at) VALUES"
                     " (?, ?, 'import', 0)", (clip, f"TRUCKUGC, truck number {n} in a field"))
        ids.append(clip)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        editor = screen.query_one(CaptionEditor)
        await until(pilot, lambda: len(table.rows) == 1000, timeout=30, message="1000 rows")
        await pilot.press(*["j"] * 25)
        assert table.current_key == ids[25]
        assert editor.text == "TRUCKUGC, truck number 25 in a field"  # no store read needed
        await pilot.press("G")
        assert editor.text == "TRUCKUGC, truck number 999 in a field"


async def test_suggestions_come_from_phrases_in_the_dataset(ws, conn, ds):
    a = add_clip(conn, ds.id, "a", state="ready")
    add_clip(conn, ds.id, "b", state="ready")
    versions.set_caption(conn, a, "TRUCKUGC, golden hour backlight, phone camera quality")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("j", "enter", *"TRUCKUGC, red truck, pho")
        await until(pilot, lambda: screen.suggestions == ["phone camera quality"])
        await pilot.press("tab")
        assert screen.query_one(CaptionEditor).text == \
            "TRUCKUGC, red truck, phone camera quality"


def drawn_chosen(app, phrase: str) -> bool:
    """Whether `phrase` is in sight as the chosen suggestion (drawn reversed)."""
    lines = widget_strips(app, app.screen.query_one("#captions-suggest"))
    line = next((s for s in lines if phrase in s.text), None)
    return line is not None and all(st.reverse for st in styles_of(line, phrase))


async def test_tab_again_swaps_in_the_next_suggestion(ws, conn, ds):
    """Only the first suggestion could be taken."""
    a = add_clip(conn, ds.id, "a", state="ready")
    add_clip(conn, ds.id, "b", state="ready")
    versions.set_caption(conn, a, "TRUCKUGC, phone camera quality, photo of a dusty road")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("j", "enter", *"TRUCKUGC, ph")
        await until(pilot, lambda: len(screen.suggestions) == 2, message="two suggestions")
        first, second = screen.suggestions
        editor = screen.query_one(CaptionEditor)
        await pilot.press("tab")
        assert editor.text == f"TRUCKUGC, {first}"
        await until(pilot, lambda: drawn_chosen(app, first),
                    message=lambda: f"the first, chosen, in sight\n{dump(app)}")
        await pilot.press("tab")
        assert editor.text == f"TRUCKUGC, {second}"
        await until(pilot, lambda: not drawn_chosen(app, first), message="the choice moved")
        await pilot.press("tab")  # round again
        assert editor.text == f"TRUCKUGC, {first}"
        await pilot.press(*",")  # a key of one's own ends the cycle
        assert editor.text == f"TRUCKUGC, {first},"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_suggestions_and_the_lint_of_what_is_typed_are_in_sight(ws, conn, ds, size):
    a = add_clip(conn, ds.id, "a", state="ready")
    add_clip(conn, ds.id, "b", state="ready")
    versions.set_caption(conn, a, "TRUCKUGC, phone camera quality, photo of a dusty road")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2)
        await pilot.press("j", "enter")
        screen.query_one(CaptionEditor).insert("TRUCKUGC, cinematic, ph")  # as if typed
        await until(pilot, lambda: len(screen.suggestions) == 2, message="two suggestions")
        await pilot.press("tab", "tab")
        second = screen.suggestions[1]
        await until(pilot, lambda: "banned word 'cinematic'" in str(
            screen.query_one("#captions-lint").render()), message="linted")
        await pilot.pause()
        seen = " ".join(" ".join(s.text.split()) for s in screen_strips(app))
        assert "banned word 'cinematic'" in seen, dump(app)
        assert drawn_chosen(app, second), dump(app)


async def test_history_key_shows_every_version(ws, conn, ds):
    from tui.screens.captions import HistoryScreen

    a = add_clip(conn, ds.id, "a", state="ready")
    for text in ("TRUCKUGC, version one here", "TRUCKUGC, version two here"):
        versions.set_caption(conn, a, text)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_captions(app, pilot)
        await until(pilot, lambda: screen.current_row() is not None)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), message="history")
        assert [v.text for v in app.screen.versions] == ["TRUCKUGC, version two here",
                                                         "TRUCKUGC, version one here"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        # restoring a version from the history: a new version with its text
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), message="history")
        await pilot.press("down", "enter")
        await until(pilot, lambda: text_of(conn, a) == "TRUCKUGC, version one here",
                    message="restored")
        assert len(versions.history(conn, a)) == 3  # nothing lost


async def test_editing_keys_clear_say_and_reach_warnings(ws, conn, ds):
    """ctrl+u cleared one wrapped line; ctrl+t said nothing when the trigger was there; n
    skipped clips with only warnings."""
    a = add_clip(conn, ds.id, "a", state="ready")
    b = add_clip(conn, ds.id, "b", state="ready")
    versions.set_caption(conn, a, "TRUCKUGC, a fine caption of a truck in a field at dawn")
    versions.set_caption(conn, b, "TRUCKUGC, a cinematic truck in a field, long " + "x " * 60)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_captions(app, pilot)
        table = screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2, message="rows")
        await pilot.press("n")  # b has only a warning (a banned word): n reaches it
        await until(pilot, lambda: table.current_key == b, message="the warning")
        await pilot.press("enter", "ctrl+t")
        await until(pilot, lambda: any("already in this caption" in str(n.message)
                                       for n in app._notifications), message="said")
        editor = screen.query_one(CaptionEditor)
        await pilot.press("ctrl+u")
        assert editor.text == ""  # all of it, though it wrapped over several lines
        await pilot.press("ctrl+z")
        assert editor.text.startswith("TRUCKUGC, a cinematic truck")
