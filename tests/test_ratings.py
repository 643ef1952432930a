from __future__ import annotations

import time

import pytest

from lorad.generation import ratings


def gen(conn, checkpoint_id=None, status="completed"):
    now = time.time()
    cur = conn.execute("INSERT INTO generations (endpoint, checkpoint_id, status, created_at,"
                       " updated_at) VALUES ('fal-ai/wan-t2v-lora', ?, ?, ?, ?)",
                       (checkpoint_id, status, now, now))
    return cur.lastrowid


def checkpoint(conn, name):
    cur = conn.execute("INSERT INTO checkpoints (name, created_at) VALUES (?, 0)", (name,))
    return cur.lastrowid


def test_ratings_append_and_carry_over(conn):
    g = gen(conn)
    ratings.rate(conn, g, stars=4)
    ratings.rate(conn, g, verdict="approve")
    ratings.toggle_tag(conn, g, "spinning tires")
    r = ratings.current(conn, g)
    assert (r.stars, r.verdict, r.tags) == (4, "approve", ("spinning tires",))
    assert len(ratings.history(conn, g)) == 3  # nothing overwritten
    with pytest.raises(ratings.RatingError):
        ratings.rate(conn, g, stars=6)


def test_wilson_prefers_many_good_votes_over_few():
    assert ratings.wilson_lower(40, 45) > ratings.wilson_lower(3, 3)
    assert ratings.wilson_lower(0, 0) == 0.0


def test_rank_checkpoints_by_current_ratings(conn):
    a, b = checkpoint(conn, "a"), checkpoint(conn, "b")
    for _ in range(8):
        ratings.rate(conn, gen(conn, a), stars=5)
    ratings.rate(conn, gen(conn, a), stars=2)
    for _ in range(2):
        ratings.rate(conn, gen(conn, b), stars=5)
    changed = gen(conn, b)
    ratings.rate(conn, changed, stars=5)
    ratings.rate(conn, changed, verdict="retake")  # the latest rating counts
    ranked = ratings.rank_checkpoints(conn)
    assert [r.name for r in ranked] == ["a", "b"]
    assert (ranked[0].rated, ranked[0].good) == (9, 8)
    assert (ranked[1].rated, ranked[1].good) == (3, 2)


def test_a_service_error_does_not_count_against_a_checkpoint(conn):
    """Generations fal failed (and someone marked retake) lowered the checkpoint's rank."""
    a = checkpoint(conn, "a")
    for _ in range(3):
        ratings.rate(conn, gen(conn, a), stars=5)
    for _ in range(3):
        ratings.rate(conn, gen(conn, a, status="failed"), verdict="retake")
    ranked = ratings.rank_checkpoints(conn)
    assert (ranked[0].rated, ranked[0].good) == (3, 3)


def test_loras_added_by_url_rank_too(conn):
    from lorad.generation import generations, loras

    for name in ("theirs", "mine"):
        loras.add(conn, name, f"https://hf.example/{name}.safetensors")
    for name, stars in (("theirs", [5, 5, 4, 5]), ("mine", [5, 2])):
        for i, s in enumerate(stars):
            g = generations.create(conn, "fal-ai/wan-t2v-lora", "p", lora=name, seed=i)
            ratings.rate(conn, g, stars=s)
    conn.execute("UPDATE generations SET status = 'completed'")
    ranked = ratings.rank_loras(conn)
    assert [(r.name, r.good, r.rated) for r in ranked] == [("theirs", 4, 4), ("mine", 1, 2)]
    assert ratings.rank_checkpoints(conn) == []


def test_a_rejected_generation_is_a_bad_outcome_whatever_its_stars(conn):
    a, b = checkpoint(conn, "a"), checkpoint(conn, "b")
    for _ in range(3):
        ratings.rate(conn, gen(conn, a), stars=5)
        g = gen(conn, b)
        ratings.rate(conn, g, stars=5)
        ratings.rate(conn, g, verdict="reject")
    ranked = ratings.rank_checkpoints(conn)
    assert [(r.name, r.good, r.rated) for r in ranked] == [("a", 3, 3), ("b", 0, 3)]
    assert not ratings.is_good(ratings.Rating(1, 5, "reject", (), None, 0))
