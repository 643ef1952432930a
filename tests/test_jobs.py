"""The job table's state machine, without a daemon."""

import time

import pytest

from lorad.core import jobs


def test_claim_is_exclusive_and_ordered(conn):
    a = jobs.enqueue(conn, "k", {"n": 1})
    b = jobs.enqueue(conn, "k", {"n": 2})
    first = jobs.claim(conn, "w1", ["k"], 30)
    second = jobs.claim(conn, "w2", ["k"], 30)
    assert (first.id, second.id) == (a, b)
    assert first.state == "running" and first.attempts == 1 and first.payload == {"n": 1}
    assert jobs.claim(conn, "w3", ["k"], 30) is None
    assert jobs.claim(conn, "w3", ["other"], 30) is None


def test_only_the_lease_owner_can_complete(conn):
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w1", ["k"], 30)
    assert not jobs.succeed(conn, job_id, "intruder", {"x": 1})
    assert jobs.succeed(conn, job_id, "w1", {"x": 1})
    job = jobs.get(conn, job_id)
    assert job.state == "succeeded" and job.result == {"x": 1} and job.progress == 1.0


def test_success_effects_roll_back_when_lease_lost(conn):
    conn.execute("CREATE TABLE fx (n INTEGER)")
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w1", ["k"], 30)
    assert not jobs.succeed(conn, job_id, "w2", also=lambda c: c.execute("INSERT INTO fx VALUES (1)"))
    assert conn.execute("SELECT COUNT(*) FROM fx").fetchone()[0] == 0
    assert jobs.succeed(conn, job_id, "w1", also=lambda c: c.execute("INSERT INTO fx VALUES (1)"))
    assert conn.execute("SELECT COUNT(*) FROM fx").fetchone()[0] == 1


def test_transient_failure_backs_off_then_gives_up(conn):
    job_id = jobs.enqueue(conn, "k", max_attempts=2)
    jobs.claim(conn, "w", ["k"], 30)
    assert jobs.fail(conn, job_id, "w", "timeout", transient=True, retry_base=100) == "queued"
    job = jobs.get(conn, job_id)
    assert job.run_after > time.time() + 50  # backing off: not claimable yet
    assert jobs.claim(conn, "w", ["k"], 30) is None
    conn.execute("UPDATE jobs SET run_after = 0 WHERE id = ?", (job_id,))
    jobs.claim(conn, "w", ["k"], 30)
    assert jobs.fail(conn, job_id, "w", "timeout", transient=True) == "failed"
    assert "gave up after 2 attempts" in jobs.get(conn, job_id).error


def test_backoff_is_exponential_and_capped():
    assert [jobs.backoff_delay(a, 2, 10) for a in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def test_permanent_failure_is_final(conn):
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w", ["k"], 30)
    assert jobs.fail(conn, job_id, "w", "bad input", transient=False) == "failed"
    assert jobs.get(conn, job_id).error == "bad input"


def test_cancel_queued_and_running(conn):
    queued = jobs.enqueue(conn, "k")
    assert jobs.request_cancel(conn, queued) == "cancelled"
    running = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w", ["k"], 30)
    assert jobs.request_cancel(conn, running) == "cancelling"
    assert jobs.cancel_requested(conn, running)
    with pytest.raises(jobs.JobError, match="only queued or running"):
        jobs.request_cancel(conn, queued)


def test_retry_resets_failed_job(conn):
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w", ["k"], 30)
    jobs.fail(conn, job_id, "w", "boom", transient=False)
    jobs.retry(conn, job_id)
    job = jobs.get(conn, job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, None)
    with pytest.raises(jobs.JobError, match="only failed or cancelled"):
        jobs.retry(conn, job_id)


def test_expired_leases_are_requeued(conn):
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "dead", ["k"], 30)
    assert jobs.requeue_orphans(conn, "me") == 0  # lease still valid
    conn.execute("UPDATE jobs SET lease_expires = 0 WHERE id = ?", (job_id,))
    assert jobs.requeue_orphans(conn, "me") == 1
    assert jobs.get(conn, job_id).state == "queued"


def test_at_start_all_foreign_leases_are_dead(conn):
    job_id = jobs.enqueue(conn, "k", max_attempts=1)
    jobs.claim(conn, "dead", ["k"], 3600)
    assert jobs.requeue_orphans(conn, "me", all_others=True) == 1
    job = jobs.get(conn, job_id)
    assert job.state == "failed" and "daemon stopped" in job.error  # out of attempts


def test_release_does_not_count_the_attempt(conn):
    job_id = jobs.enqueue(conn, "k")
    jobs.claim(conn, "w", ["k"], 30)
    jobs.release(conn, job_id, "w")
    job = jobs.get(conn, job_id)
    assert (job.state, job.attempts, job.lease_owner) == ("queued", 0, None)
