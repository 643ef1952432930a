"""The caption editor against the user's other hands: a `lorad captions set` from another
terminal while a caption is open, a quit or a crash with unsaved text."""

from __future__ import annotations

import pytest
from helpers import go_to
from helpers import pilot_until as until
from test_captions import add_clip

from lorad.captions import drafts, versions
from lorad.media import datasets
from tui.app import LoradApp
from tui.screens.captions import CaptionEditor, CaptionsScreen
from tui.screens.confirm import ConfirmScreen

OPENED = "TRK, a red truck parked in a field"
THEIRS = "TRK, a red truck parked in a field, set from the CLI"
MINE = "TRK, a red truck parked in a dry field at noon"


@pytest.fixture
def clip(conn):
    d = datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRK")
    clip = add_clip(conn, d.id, "a", state="ready")
    versions.set_caption(conn, clip, OPENED)
    return clip


def text_of(conn, clip_id):
    v = versions.current(conn, clip_id)
    return v.text if v else ""


async def edit(app, pilot, text: str) -> CaptionEditor:
    await go_to(app, pilot, "Captions", CaptionsScreen, rows=1)
    await pilot.press("enter")
    editor = app.screen.query_one(CaptionEditor)
    editor.load_text("")  # as if selected and retyped
    await pilot.press(*text)
    return editor


@pytest.mark.parametrize("choice", ["m", "t", "escape"])
async def test_a_cli_edit_made_while_the_editor_is_open_is_not_silently_reverted(ws, conn, clip,
                                                                                  choice,
                                                                                  fault_report):
    """Escape saved the editor's older text over a `lorad captions set` from elsewhere."""
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await edit(app, pilot, MINE)
        versions.set_caption(conn, clip, THEIRS)  # another terminal
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the question")
        assert text_of(conn, clip) == THEIRS  # nothing written before the answer
        await pilot.press(choice)
        if choice == "m":
            await until(pilot, lambda: text_of(conn, clip) == MINE, message="mine saved")
            assert drafts.get(conn, clip) is None
        else:
            await until(pilot, lambda: drafts.get(conn, clip) is not None, message="draft kept")
            assert text_of(conn, clip) == THEIRS and drafts.get(conn, clip).text == MINE
    assert [v.text for v in versions.history(conn, clip)][:2] == [OPENED, THEIRS]
    kept = {v.text for v in versions.history(conn, clip)} | (
        {drafts.get(conn, clip).text} if drafts.get(conn, clip) else set())
    fault_report(f"CLI caption edit while the editor is open ({choice})",
                 counted="texts kept of opened, theirs, mine", expected=3,
                 observed=len(kept & {OPENED, THEIRS, MINE}))


async def test_a_draft_kept_after_a_conflict_is_offered_back_and_saves_cleanly(ws, conn, clip):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await edit(app, pilot, MINE)
        versions.set_caption(conn, clip, THEIRS)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the question")
        await pilot.press("t")
        await until(pilot, lambda: drafts.get(conn, clip) is not None, message="draft kept")
        await until(pilot, lambda: app.screen.by_id[clip].draft is not None, message="reloaded")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the offer")
        await pilot.press("r")
        editor = app.screen.query_one(CaptionEditor)
        assert editor.text == MINE and not editor.read_only
        await pilot.press("escape")  # written over theirs knowingly: no second question
        await until(pilot, lambda: text_of(conn, clip) == MINE, message="saved")
        assert drafts.get(conn, clip) is None
        assert not isinstance(app.screen, ConfirmScreen)


async def test_text_typed_before_a_quit_or_a_crash_comes_back(ws, conn, clip, fault_report):
    """ctrl+q, or a crash, while editing lost the typed text."""
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await edit(app, pilot, MINE)
        # kept while typing, before any quit: a crash from here on loses nothing
        await until(pilot, lambda: (d := drafts.get(conn, clip)) and d.text == MINE,
                    message="the draft written as the user types")
        await pilot.press(*" and more")
        await pilot.press("ctrl+q")  # asks first; n quits, the text kept as a draft
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="asked")
        await pilot.press("n")
    assert drafts.get(conn, clip).text == MINE + " and more"
    assert text_of(conn, clip) == OPENED
    fault_report("ctrl+q while editing a caption", counted="typed characters kept",
                 expected=len(MINE + " and more"), observed=len(drafts.get(conn, clip).text))

    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await go_to(app, pilot, "Captions", CaptionsScreen, rows=1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the offer")
        await pilot.press("r")
        assert app.screen.query_one(CaptionEditor).text == MINE + " and more"
        await pilot.press("escape")
        await until(pilot, lambda: text_of(conn, clip) == MINE + " and more", message="saved")
    assert drafts.get(conn, clip) is None


async def test_quitting_while_editing_can_save_first(ws, conn, clip):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await edit(app, pilot, MINE)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="asked")
        await pilot.press("y")
    assert text_of(conn, clip) == MINE and drafts.get(conn, clip) is None
