"""Setup without leaving the TUI (issue 15, item 9): the forms behind `N`, driven by keys at
80x24 and 120x36, checked against the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers import pilot_until as until
from helpers import run_jobs
from media_factory import tiny_clip

from lorad.core import daemon
from lorad.datasets import export
from lorad.generation import generations
from lorad.media import clips, datasets
from lorad.training import pods, runs
from tui.app import LoradApp
from tui.forms.base import FormScreen
from tui.forms.clips import AddClipsForm, complete_path
from tui.forms.dataset import NewDatasetForm, RulesForm
from tui.forms.export import ExportForm
from tui.forms.generate import GenerateForm
from tui.forms.menu import SetupMenu
from tui.forms.run import NewRunForm

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 36), id="120x36")]


def screen_text(app) -> str:
    """The text on the terminal now, line by line (what a person sees, colours aside)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def open_form(app, pilot, digit: str, form_type):
    await pilot.press("N")
    await until(pilot, lambda: isinstance(app.screen, SetupMenu), message="the setup menu")
    await pilot.press(digit)
    await until(pilot, lambda: isinstance(app.screen, form_type) and app.screen.data
                is not None, message=form_type.__name__)
    await pilot.pause()
    return app.screen


def note(form) -> str:
    return str(form.query_one("#form-note").render())


def error(form) -> str:
    return str(form.query_one("#form-error").render())


async def settle(pilot, form, want: str, where=note):
    await until(pilot, lambda: want in where(form), message=f"{want!r} in the form "
                f"(note: {note(form)!r}, error: {error(form)!r})")


async def choose(pilot, form, select_id: str, label_start: str):
    """Pick an option of a Select by keys: focus it, open it, move to the option, enter."""
    from textual.widgets import Select

    box = form.query_one(select_id, Select)
    box.focus()
    await pilot.press("enter")
    await pilot.pause()
    labels = [str(prompt) for prompt, _ in box._options]
    index = next(i for i, label in enumerate(labels) if label.startswith(label_start))
    current = labels.index(str(next(p for p, v in box._options if v == box.value))) \
        if not box.is_blank() else 0
    await pilot.press(*(["down"] * (index - current)))
    await pilot.press("enter")
    await until(pilot, lambda: not box.is_blank() and labels[index].startswith(label_start),
                message=f"{label_start} chosen")


@pytest.mark.parametrize("size", SIZES)
async def test_a_dataset_is_created_filled_and_given_rules_without_the_cli(ws, conn, tmp_path,
                                                                          size):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        tiny_clip(folder / f"shot{i}.mp4", colour)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        # the empty workspace says where to start
        await until(pilot, lambda: "N opens Setup" in screen_text(app), message="the hint")
        form = await open_form(app, pilot, "1", NewDatasetForm)
        await pilot.press(*"truck")
        await choose(pilot, form, "#dataset-profile", "wan21-t2v-480p-portrait")
        await settle(pilot, form, "480x848, 16 fps")
        form.query_one("#dataset-trigger").focus()
        await pilot.press(*"TRUCKUGC")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
        d = datasets.get(conn, "truck")
        assert (d.profile, d.trigger) == ("wan21-t2v-480p-portrait", "TRUCKUGC")

        form = await open_form(app, pilot, "2", AddClipsForm)
        assert form.query_one("#add-path").has_focus
        form.query_one("#add-path").value = f"{tmp_path}/"  # typed, up to the last letters
        await pilot.press(*"sho")
        await until(pilot, lambda: form.query_one("#add-path")._suggestion.endswith("shots/"),
                    message="the folder completed")
        await pilot.press("right")  # accept the completion, as in a shell
        assert form.query_one("#add-path").value == str(folder) + "/"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
        assert len(clips.list_clips(conn, d.id)) == 3  # queued for the daemon

        form = await open_form(app, pilot, "3", RulesForm)
        assert form.query_one("#rules-trigger").value == "TRUCKUGC"
        form.query_one("#rules-banned").focus()
        await pilot.press(*"beautiful, stunning")
        form.query_one("#rules-prompts").focus()
        await pilot.press(*"TRK, a barn", "enter", *"TRK, a beach")
        form.query_one("#rules-min").focus()
        await pilot.press(*"12")
        form.query_one("#rules-max").focus()
        await pilot.press(*"8")
        await settle(pilot, form, "swap them", where=error)  # checked as typed
        await pilot.press("ctrl+s")
        await settle(pilot, form, "swap them", where=error)
        assert isinstance(app.screen, RulesForm)  # refused: still open, nothing saved
        assert "min_words" not in datasets.get(conn, "truck").settings.get("caption_rules", {})
        await pilot.press("backspace", *"30")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
    d = datasets.get(conn, "truck")
    rules = d.settings["caption_rules"]
    assert rules["banned_words"] == ["beautiful", "stunning"]
    assert (rules["min_words"], rules["max_words"]) == (12, 30)
    assert d.settings["eval_prompts"] == ["TRK, a barn", "TRK, a beach"]


def approved_dataset(conn, tmp_path, n: int = 2) -> datasets.Dataset:
    """A dataset whose clips are processed and approved (media made by ffmpeg), one of them
    without a caption."""
    from lorad.captions import versions

    d = datasets.create(conn, "truck", "wan21-t2v-480p-portrait", trigger="TRK")
    for i in range(n):
        media = tiny_clip(tmp_path / f"c{i}.mp4", ("red", "blue", "green")[i % 3])
        clip_id = clips.insert(conn, d.id, str(media), None, size=1, mtime=0, now=time.time())
        conn.execute("UPDATE clips SET state = 'approved', media_path = ?, frames = 41, fps = 16,"
                     " width = 480, height = 848 WHERE id = ?", (str(media), clip_id))
        if i:
            versions.set_caption(conn, clip_id, f"TRK, a truck number {i} parked outside")
    return d


@pytest.mark.parametrize("size", SIZES)
async def test_export_shows_the_preflight_refuses_errors_and_queues_a_job(ws, conn, tmp_path,
                                                                           size):
    d = approved_dataset(conn, tmp_path)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        form = await open_form(app, pilot, "4", ExportForm)
        await settle(pilot, form, "1 error(s)")
        assert "no caption" in screen_text(app)  # the finding is in view, even at 80x24
        # for another trainer: its format, and what it makes of the clips, as the note says
        await choose(pilot, form, "#export-format", "diffusion-pipe")
        await settle(pilot, form, "frame buckets:")
        form.query_one("#export-format").clear()
        await until(pilot, lambda: "frame buckets" not in note(form), message="the profile's")
        await pilot.press("ctrl+s")
        await settle(pilot, form, "export stopped", where=error)
        assert not export.list_versions(conn)
        form.query_one("#export-force").focus()
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
    await asyncio.to_thread(run_jobs, ws)
    (version,) = export.list_versions(conn)
    assert version.dataset_id == d.id and version.clip_count == 2
    assert (Path(version.export_path) / "manifest.json").exists()


def musubi_ready(conn) -> pods.Pod:
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=0.79)
    pods.update(conn, pod.id, setup='{"trainers": {"musubi": {"dit": "/m/dit.safetensors", '
                '"vae": "/m/vae.pth"}}}')
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('truck', "
                 "'wan21-t2v-480p-portrait', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'abc123def', '{\"clips\": [1, 2]}', 0)")
    return pods.get(conn, "gpu1")


@pytest.mark.parametrize("size", SIZES)
async def test_a_run_is_started_from_a_form_the_trainer_checks_as_you_type(ws, conn, size):
    musubi_ready(conn)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        form = await open_form(app, pilot, "5", NewRunForm)
        assert form.query_one("#run-name").value == "truck-1"
        options = form.query_one("#run-options")
        assert 'dit = "/m/dit.safetensors"' in options.text  # what the pod's check found
        await settle(pilot, form, "t5 (path on the pod) is required", where=error)
        assert "t5 (path on the pod) is required" in screen_text(app)
        await pilot.press("ctrl+s")
        await settle(pilot, form, "t5", where=error)
        assert runs.list_all(conn) == []  # refused before anything is queued
        options.focus()
        row = options.text.splitlines().index('t5 = ""')  # the empty path, to fill in
        options.move_cursor((row, len('t5 = "')))
        await pilot.press(*"/m/t5.pth")
        form.query_one("#run-budget").focus()
        await pilot.press(*"12.5")
        await settle(pilot, form, "the trainer accepts these options")
        assert "$0.79/h" in note(form) and "$12.50" in note(form)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
    (run,) = runs.list_all(conn)
    assert (run.name, run.budget, run.state) == ("truck-1", 12.5, "queued")
    assert run.config["t5"] == "/m/t5.pth" and run.config["dit"] == "/m/dit.safetensors"


@pytest.mark.parametrize("size", SIZES)
async def test_generate_prices_a_sweep_before_sending_and_sends_it_once(ws, conn, truck, size):
    datasets.create(conn, "truck", "wan21-t2v-480p-portrait", trigger="TRK")
    datasets.change_rules(conn, 1, datasets.RulesChange(eval_prompts=["TRK, a truck"]))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("N")
        await until(pilot, lambda: isinstance(app.screen, SetupMenu))
        await pilot.press("down", "down", "down", "down", "down", "enter")  # by the list too
        await until(pilot, lambda: isinstance(app.screen, GenerateForm) and app.screen.data)
        form = app.screen
        await choose(pilot, form, "#gen-endpoint", "fal-ai/wan/v2.2-a14b/text-to-video/lora")
        await choose(pilot, form, "#gen-dataset", "truck")
        assert form.query_one("#gen-prompts").text == "TRK, a truck"
        form.query_one("#gen-loras").focus()
        await pilot.press("space", "down", "space")  # both LoRAs
        form.query_one("#gen-scales").focus()
        await pilot.press("ctrl+u", *"0.6, 1.0")
        form.query_one("#gen-seeds").focus()
        await pilot.press("ctrl+u", *"3")
        await settle(pilot, form, "12 generation(s), about $")
        assert "a sweep" in note(form) and "12 generation(s)" in screen_text(app)
        assert generations.list_all(conn) == []  # priced, nothing sent
        await pilot.press("ctrl+s", "ctrl+s")  # twice: a paid request goes out once
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
        await pilot.press("ctrl+s")
    made = generations.list_all(conn)
    assert len(made) == 12
    assert len({g.sweep_id for g in made}) == 1 and made[0].sweep_id
    assert len({g.seed for g in made}) == 3  # the three seeds the price was for


async def test_the_daemon_is_started_from_the_tui(ws):
    app = LoradApp(ws, refresh_interval=0.05)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "D starts it" in app.sub_title, message="stopped shown")
            await pilot.press("N")
            await until(pilot, lambda: isinstance(app.screen, SetupMenu))
            assert "Start the daemon" in screen_text(app)
            await pilot.press("7")
            await until(pilot, lambda: daemon.status(ws).running, timeout=30,
                        message="the daemon running")
            await until(pilot, lambda: "daemon: up" in app.sub_title, message="the header")
    finally:
        daemon.stop(ws, wait=30)


async def test_setup_forms_are_in_the_command_palette(ws, conn):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p", *"Setup: New dataset", "enter")
        await until(pilot, lambda: isinstance(app.screen, NewDatasetForm), message="the form")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), message="closed")
    assert datasets.list_all(conn) == []


def test_paths_complete_to_folders_and_media_only(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "clip.txt").write_text("")
    (tmp_path / ".clips-hidden").mkdir()
    assert complete_path(str(tmp_path / "cli")) in (str(tmp_path / "clip.mp4"),
                                                   str(tmp_path / "clips") + "/")
    assert complete_path(str(tmp_path / "clips")) is None  # nothing more to add
    assert complete_path(str(tmp_path / "clip.")) == str(tmp_path / "clip.mp4")
    assert complete_path(str(tmp_path / "nothing/x")) is None
    assert complete_path(str(tmp_path / ".")) is None  # hidden entries are not offered
