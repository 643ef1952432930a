"""Nothing paid twice: a submit whose answer is lost, a daemon killed while fal's answer is on
its way, a cancel during a hung call, and retakes."""

from __future__ import annotations

import signal
import threading

from fal_double import Latency
from helpers import WAN22, queue_generation, run_jobs, wait_for

from lorad.cli import main
from lorad.core import jobs
from lorad.generation import generations


def test_a_submit_whose_answer_is_lost_is_shown_and_not_sent_again(ws, conn, fal, truck,
                                                                   capsys, fault_report):
    fal.drop_next(1, applied=True, match=f"POST /{WAN22}")  # fal has it; its answer is lost
    gen_id = queue_generation(conn)
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "unknown" and "was not sent again" in g.error
    assert fal.submits[WAN22] == 1
    assert generations.unknown_outcomes(conn) == 1
    assert main(["-w", str(ws.root), "gens"]) == 0
    assert "1 submit(s) had their answer lost" in capsys.readouterr().out
    # the person chooses: send it again
    assert main(["-w", str(ws.root), "gens", "resubmit", str(gen_id)]) == 0
    run_jobs(ws)
    assert generations.get(conn, gen_id).status == "completed" and fal.submits[WAN22] == 2
    fault_report("submit answer lost (connection drop)", counted="paid requests (1 + resubmit "
                 "by the user)", expected=2, observed=fal.submits[WAN22],
                 note="lost answers counted: 1")


def test_forgetting_a_lost_submit_sends_nothing(ws, conn, fal, truck, fault_report):
    fal.drop_next(1, applied=True, match=f"POST /{WAN22}")
    gen_id = queue_generation(conn)
    run_jobs(ws)
    assert main(["-w", str(ws.root), "gens", "forget", str(gen_id)]) == 0
    run_jobs(ws)
    g = generations.get(conn, gen_id)
    assert g.status == "failed" and "by your choice" in g.error and fal.submits[WAN22] == 1
    fault_report("submit answer lost, user forgets it", counted="paid requests",
                 expected=1, observed=fal.submits[WAN22])


def test_a_daemon_killed_while_the_answer_is_on_its_way_does_not_pay_twice(
        ws, conn, fal, truck, daemon_proc, fault_report):
    held = fal.hold_next(match=f"POST /{WAN22}")  # fal takes it; the answer waits
    gen_id = queue_generation(conn)
    proc = daemon_proc.start()
    try:
        wait_for(lambda: fal.submits[WAN22] == 1, timeout=60, message="fal to accept it")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        held.set()
    assert generations.get(conn, gen_id).status == "submitting"  # the intent, written first
    daemon_proc.start()
    wait_for(lambda: generations.get(conn, gen_id).status == "unknown", timeout=60,
             message="the next daemon to see the intent")
    assert fal.submits[WAN22] == 1  # not sent again by itself
    fault_report("kill -9 while fal's answer is on its way", counted="paid requests",
                 expected=1, observed=fal.submits[WAN22],
                 daemon_alive=daemon_proc.proc.poll() is None)


def test_a_cancel_during_a_hung_call_still_reaches_fal(ws, conn, fal, truck, monkeypatch,
                                                       fault_report):
    """The request keeps running, and billing, unless fal hears of the cancel; the daemon
    interrupts a handler that does not answer its cancel in time."""
    from lorad.core import daemon

    monkeypatch.setattr(daemon, "CANCEL_GRACE", 0.5)
    fal.latency = Latency(queue_polls=10**9)  # stays queued
    gen_id = queue_generation(conn)
    worker = threading.Thread(target=run_jobs, args=(ws, 60))
    worker.start()
    try:
        wait_for(lambda: generations.get(conn, gen_id).status == "submitted", timeout=30,
                 message="the request on fal")
        hang = fal.hold_next(match="/status")  # the next status call does not come back
        wait_for(lambda: any("/status" in r.path for r in fal.requests[-1:]), timeout=30,
                 message="a status call under way")
        generations.cancel(conn, gen_id)
        wait_for(lambda: any(r.method == "PUT" and r.path.endswith("/cancel")
                             for r in fal.requests), timeout=30, message="fal to hear it")
        hang.set()
    finally:
        worker.join(60)
    g = generations.get(conn, gen_id)
    assert g.status == "cancelled" and "cancelled by you" in g.error
    assert jobs.get(conn, g.job_id).state == "cancelled"
    fault_report("cancel during a hung fal call", counted="cancel requests fal received",
                 expected=1, observed=sum(r.method == "PUT" and r.path.endswith("/cancel")
                                          for r in fal.requests))


def test_two_retakes_are_two_different_requests(ws, conn, fal, truck, fault_report):
    """Retake twice used to send two identical paid requests (the same derived seed)."""
    original = queue_generation(conn, seed=7)
    first = generations.retake(conn, original)
    second = generations.retake(conn, original)
    seeds = {generations.get(conn, i).seed for i in (original, first, second)}
    assert len(seeds) == 3
    fault_report("retake twice", counted="distinct seeds of 3 requests", expected=3,
                 observed=len(seeds))
    assert generations.get(conn, generations.retake(conn, original, seed=7)).seed == 7  # asked
