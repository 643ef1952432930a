"""Pilot tests of the Training and Pods screens on runs and pods written to the store."""

from __future__ import annotations

import time

import pytest
from helpers import SIZE_IDS, SIZES, dump, looks_red, styles_of, widget_lines, widget_strips
from helpers import pilot_until as until

from lorad.core import jobs
from lorad.generation import ratings
from lorad.training import pods, runs
from tui.app import LoradApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.pods import PodsScreen
from tui.screens.training import TrainingScreen
from tui.widgets.rowlist import RowList

CFG = {"dit": "/m/dit", "vae": "/m/vae", "t5": "/m/t5"}


@pytest.fixture
def run(conn):
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=0.69)
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('d', 'p', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', '{}', 0)")
    r = runs.create(conn, "truck", 1, pod.id, CFG)
    runs.start(conn, r.id)
    now = time.time()
    runs.update(conn, r.id, state="running", stage="train", step=100_000, total_steps=120_000,
                avr_loss=0.08, rate=12.5, remaining=1600, started_at=now - 3600,
                log_tail="steps: ... avr_loss=0.08")
    with conn:
        conn.executemany("INSERT INTO loss_points (run_id, step, avr_loss, at) VALUES (?,?,?,?)",
                         [(r.id, s, 1.0 / (1 + s / 1000), now) for s in range(1, 100_001)])
        conn.execute("INSERT INTO checkpoints (run_id, remote_path, name, epoch, state,"
                     " created_at) VALUES (?, '/o/truck-000001.safetensors',"
                     " 'truck-000001.safetensors', 1, 'remote', 0)", (r.id,))
        conn.execute("INSERT INTO generations (checkpoint_id, endpoint, status, created_at,"
                     " updated_at) VALUES (1, 'fal-ai/wan-t2v-lora', 'completed', 0, 0)")
    ratings.rate(conn, 1, stars=5, verdict="approve")
    return runs.get_by_id(conn, r.id)


@pytest.fixture
def light_run(conn):
    """A run named truck on a pod, without `run`'s 100k loss points (for what needs a run,
    not its chart)."""
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=0.69)
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('d', 'p', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', '{}', 0)")
    r = runs.create(conn, "truck", 1, pod.id, CFG)
    runs.update(conn, r.id, state="succeeded", stage="done", step=960, total_steps=960,
                started_at=time.time() - 3600, ended_at=time.time())
    return runs.get_by_id(conn, r.id)


async def test_training_screen_charts_100k_points_and_stops(ws, conn, run):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        screen = app.screen
        await until(pilot, lambda: screen.data is not None and screen.data.detail is not None,
                    timeout=20, message="run detail")
        detail = screen.data.detail
        assert detail.points == 100_000
        assert 0 < len(detail.xs) <= 2 * max(40, screen.query_one("#training-chart").size.width)
        figures = str(screen.query_one("#training-figures").render())
        assert "cost $0.69" in figures and "projected" in figures
        checkpoints = str(screen.query_one("#training-checkpoints").render())
        assert "truck-000001" in checkpoints
        assert "rated 0.21 (1/1 good 5.0★)" in checkpoints  # one vote: a low lower bound
        await pilot.press("s")
        assert screen.smoothing is False
        await pilot.press("p")
        await until(pilot, lambda: jobs.counts_by_state(conn)["queued"] >= 2, message="pull")
        job = jobs.get(conn, runs.get_by_id(conn, run.id).job_id)
        conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job.id,))
        await pilot.press("x")  # stops work: asked first
        await until(pilot, lambda: "Stop run truck" in str(app.screen.query("Static").first()
                                                         .render()), message="asked")
        assert not jobs.get(conn, job.id).cancel_requested
        await pilot.press("y")
        await until(pilot, lambda: jobs.get(conn, job.id).cancel_requested, message="stop")


async def test_pods_screen_queues_start_stop_check(ws, conn, run):
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, PodsScreen))
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 1)
        assert table.rows[0][5] == "truck"  # the run on it
        for key, kind in (("s", "pod.start"), ("x", "pod.stop"), ("c", "pod.check")):
            await pilot.press(key)
            if key in "sx":  # costs money or stops work: asked first
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen),
                            message=f"{kind} asked")
                assert not jobs.list_jobs(conn, kind=kind)
                await pilot.press("y")
            await until(pilot, lambda kind=kind: jobs.list_jobs(conn, kind=kind), message=kind)


async def test_shift_p_publishes_the_best_rated_local_checkpoint(ws, conn, run, monkeypatch):
    from tui.screens.publish import PublishScreen

    conn.execute("UPDATE checkpoints SET state = 'local', local_path = '/x' WHERE id = 1")
    conn.execute("INSERT INTO checkpoints (run_id, remote_path, name, epoch, state, local_path,"
                 " created_at) VALUES (?, '/o/truck-000002.safetensors',"
                 " 'truck-000002.safetensors', 2, 'local', '/y', 0)", (run.id,))
    published = []
    import lorad.publish.publish_job

    def fake_enqueue(conn, ref, repo, **kw):  # the job itself is tested in test_publish
        published.append((ref, repo, kw))
        return 1

    monkeypatch.setattr(lorad.publish.publish_job, "enqueue", fake_enqueue)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        screen = app.screen
        await until(pilot, lambda: screen.data is not None and screen.data.detail
                    is not None and len(screen.data.detail.checkpoints) == 2)
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, PublishScreen), message="form")
        assert app.screen.checkpoints[0]["id"] == 1  # rated beats newer
        await pilot.press(*"me/truck", "enter")
        await until(pilot, lambda: published, message="publish queued")
    assert published == [("1", "me/truck", {"private": False, "convert": True, "name": None})]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_a_run_watched_from_afar_says_how_fresh_it_is_and_what_it_will_cost(ws, conn,
                                                                                   size):
    """The step and ETA froze with no warning when the pod stopped answering; a projected cost
    past the budget was not said; a stopped run still showed an ETA."""
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=2.0)
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('d', 'p', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', '{}', 0)")
    r = runs.create(conn, "far", 1, pod.id, CFG, budget=2.5)
    job = runs.start(conn, r.id)
    now = time.time()
    runs.update(conn, r.id, state="running", stage="train", step=236, total_steps=960,
                avr_loss=0.08, rate=0.5, remaining=4 * 3600, started_at=now - 3600)
    conn.execute("INSERT INTO loss_points (run_id, step, avr_loss, at) VALUES (?, 236, 0.08, ?)",
                 (r.id, now - 600))
    conn.execute("UPDATE jobs SET progress_msg = 'pod unreachable since 12:04, reconnecting'"
                 " WHERE id = ?", (job,))
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        screen = app.screen
        figures = screen.query_one("#training-figures")
        await until(pilot, lambda: "updated" in str(figures.render()), message="freshness")
        text = str(figures.render())
        assert "step 236/960" in text and "ETA 4h" in text
        assert "updated 10m0" in text and "ago" in text
        assert "pod unreachable since 12:04" in text
        assert "passes the budget $2.50" in text
        # in sight, wrapped as the width asks: every one of them
        await pilot.pause()
        seen = " ".join(" ".join(widget_lines(app, figures)).split())
        for part in ("step 236/960", "ETA 4h", "updated 10m0", "pod unreachable since 12:04",
                     "passes the budget $2.50"):
            assert part in seen, f"{part!r} not in sight at {size}\n{dump(app)}"
        await until(pilot, lambda: "training far 236/960" in app.sub_title, message="header")
        runs.update(conn, r.id, state="stopped", error="stopped by request")
        await until(pilot, lambda: "stopped by request" in str(figures.render()),
                    message="stopped")
        text = str(figures.render())
        assert "ETA" not in text and "updated" not in text and "passes the budget" not in text


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_a_runs_samples_are_listed_by_checkpoint_and_play(ws, conn, light_run,
                                                                monkeypatch, tmp_path, size):
    """Samples came down with the run but could only be found in the file browser."""
    from media_factory import make_video

    from lorad.media import player
    from tui.screens.player import PlayerScreen
    from tui.screens.samples import SamplesScreen

    monkeypatch.setattr(player, "has_display", lambda *a: False)
    folder = ws.downloads_dir() / "truck" / "sample"
    for name in ("truck_e000001_00_20261130120000_42", "truck_e000002_00_20261130130000_42",
                 "truck_000150_01_20261130123000"):
        make_video(folder / f"{name}.mp4", size="160x288", fps=16, seconds=1, audio=False)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        await until(pilot, lambda: app.screen.selected() is not None, message="the run")
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SamplesScreen), message="samples")
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 3, message="listed")
        assert [r[0] for r in table.rows] == ["epoch 2", "epoch 1", "step 150"]
        assert table.rows[2][1:3] == ("2", "-")  # the second prompt, no seed in the name
        # in sight: the checkpoint each was made at, and the prompt
        await pilot.pause()
        lines = widget_lines(app, table)
        assert {"made", "at", "prompt"} <= set(lines[0].split()), dump(app)
        assert [line.split()[:3] for line in lines[1:4]] == [
            ["epoch", "2", "1"], ["epoch", "1", "1"], ["step", "150", "2"]], dump(app)
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen), message="playing")


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_run_list_shows_each_runs_state_and_a_failure_in_red(ws, conn, size):
    pod = pods.add(conn, "gpu1", host="127.0.0.1", port=2222, cost_per_hour=0.69)
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('d', 'p', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, content_hash, manifest, created_at)"
                 " VALUES (1, 'h', '{}', 0)")
    for name, state in (("truck", "running"), ("broken", "failed")):
        r = runs.create(conn, name, 1, pod.id, CFG)
        runs.update(conn, r.id, state=state, stage="train", step=5, total_steps=960,
                    started_at=time.time() - 60)
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 2, message="two runs")
        await pilot.pause()
        strips = widget_strips(app, table)
        assert {"run", "state", "step"} <= set(strips[0].text.split()), dump(app)
        failed = next(s for s in strips if s.text.startswith("broken"))
        assert all(looks_red(app, st) for st in styles_of(failed, " failed ")), dump(app)


async def test_the_training_screen_with_no_runs_reads_the_store_only_when_it_changes(
        ws, monkeypatch):
    reads = []
    load = TrainingScreen.load
    monkeypatch.setattr(TrainingScreen, "load", lambda self, c: reads.append(1) or load(self, c))
    app = LoradApp(ws, refresh_interval=5)  # no store change to watch for anyway
    async with app.run_test(size=(80, 24)) as pilot:
        app.switch_mode("training")  # as 3 does, without waiting for an idle app
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen))
        await until(pilot, lambda: app.screen.data is not None, message="the first read")
        await pilot.pause(0.2)
        before = len(reads)
        await pilot.pause(0.5)
        assert len(reads) - before <= 1, f"{len(reads) - before} reads in half a second, idle"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_pods_list_shows_each_pods_state_and_its_run(ws, conn, light_run, size):
    runs.update(conn, light_run.id, state="running")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, PodsScreen))
        table = app.screen.query_one(RowList)
        await until(pilot, lambda: len(table.rows) == 1, message="the pod")
        await pilot.pause()
        lines = widget_lines(app, table)
        assert {"pod", "state", "run"} <= set(lines[0].split()), dump(app)
        assert {"gpu1", "truck"} <= set(lines[1].split()), dump(app)
