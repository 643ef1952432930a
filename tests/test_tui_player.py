"""Playback where no window can open (over SSH): inside the terminal, with a seek bar, and back
with q; a player window only where a display exists."""

from __future__ import annotations

import pytest
from helpers import SIZE_IDS, SIZES, dump, go_to, widget_lines
from helpers import pilot_until as until
from media_factory import make_video

from lorad.generation import generations, loras
from lorad.media import player
from tui.app import LoradApp
from tui.screens.captions import CaptionsScreen
from tui.screens.generations import GenerationsScreen
from tui.screens.player import PlayerScreen

WAN22 = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


@pytest.mark.parametrize("env,platform,expected", [
    ({}, "linux", False),  # plain SSH
    ({"DISPLAY": ":0"}, "linux", True), ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({}, "darwin", True),
])
def test_a_player_window_only_where_a_display_exists(env, platform, expected):
    assert player.has_display(env, platform) == expected


def test_frames_are_decoded_small_and_at_a_few_per_second(tmp_path):
    clip = make_video(tmp_path / "c.mp4", size="480x848", fps=16, seconds=3, audio=False)
    got = player.frames(clip, fps=8, height=216)
    assert abs(len(got.images) - 24) <= 1 and got.fps == 8
    assert got.images[0].size == (122, 216) and abs(got.duration - 3.0) < 0.1


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_space_plays_inside_the_terminal_without_a_display(ws, conn, tmp_path,
                                                                 monkeypatch, size):
    """space suspended the TUI into ffplay, which never appeared over SSH; q did nothing."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    video = make_video(tmp_path / "out.mp4", size="160x288", fps=16, seconds=2, audio=False)
    loras.add(conn, "truck", "https://hf.example/t.safetensors", expert="high")
    gen = generations.create(conn, WAN22, "TRK, a truck", lora="truck", seed=1)
    conn.execute("UPDATE generations SET status = 'completed', output_path = ?", (str(video),))
    app = LoradApp(ws, refresh_interval=0.05)
    windows = []
    monkeypatch.setattr(app, "play", windows.append)
    async with app.run_test(size=size) as pilot:
        await go_to(app, pilot, "Generations", GenerationsScreen, rows=1)
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen), message="the player")
        screen = app.screen
        await until(pilot, lambda: screen.clip is not None, message="frames decoded")
        bar = screen.query_one("#player-bar")
        assert f"#{gen} TRK, a truck" in str(screen.query_one("#player-title").render())
        await pilot.press("space")  # pause, then step
        assert "paused" in str(bar.render())
        # in sight: the title, a frame (drawn, not blank), the seek bar and its state
        await until(pilot, lambda: "paused" in " ".join(widget_lines(app, bar)),
                    message=lambda: f"the bar in sight\n{dump(app)}")
        assert any(f"#{gen} TRK, a truck" in line for line in
                   widget_lines(app, screen.query_one("#player-title"))), dump(app)
        frame = widget_lines(app, screen.query_one("Image"))
        assert len(frame) >= 5 and sum(bool(line.strip()) for line in frame) >= 5, dump(app)
        before = screen.index
        await pilot.press("right")
        assert screen.index == min(before + 8, len(screen.clip.images) - 1)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, GenerationsScreen), message="back")
    assert windows == []  # no player window was tried


async def test_space_plays_on_the_captions_screen(ws, conn, tmp_path, monkeypatch):
    from test_captions import add_clip

    from lorad.media import datasets

    monkeypatch.setattr(player, "has_display", lambda *a: False)
    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    add_clip(conn, d.id, "c", media=str(make_video(tmp_path / "c.mp4", size="160x288",
                                                   fps=16, seconds=1, audio=False)))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await go_to(app, pilot, "Captions", CaptionsScreen, rows=1)
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen), message="the player")
