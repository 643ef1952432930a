import json
import sqlite3

import pytest

from lorad.core import store


def test_migrations_apply_on_empty_database(tmp_path):
    conn = store.connect(tmp_path / "db.sqlite")
    latest = store.migration_files()[-1][0]
    assert store.schema_version(conn) == latest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for entity in ("datasets", "clips", "caption_versions", "dataset_versions", "pods", "runs",
                   "loss_points", "checkpoints", "generations", "ratings", "cost_entries",
                   "jobs", "events"):
        assert entity in tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_apply_on_older_database(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite"
    real = store.migration_files()
    extra = (real[-1][0] + 1, f"{real[-1][0] + 1:03d}_extra.sql",
             "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n-- trailing comment\n")
    conn = store.connect(path)  # the "older" database: only the shipped migrations
    conn.execute("INSERT INTO datasets (name, profile, created_at) VALUES ('keep', 'p', 0)")
    conn.close()
    monkeypatch.setattr(store, "migration_files", lambda: real + [extra])
    conn = store.connect(path)
    assert store.schema_version(conn) == extra[0]
    assert conn.execute("SELECT name FROM datasets").fetchone()[0] == "keep"
    conn.execute("INSERT INTO extra DEFAULT VALUES")
    applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert applied == [name for _n, name, _s in real] + [extra[1]]


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "db.sqlite"
    conn = store.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (999, '999_future.sql', 0)")
    conn.close()
    with pytest.raises(store.StoreError, match="schema version 999"):
        store.connect(path)


def test_failed_migration_leaves_database_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite"
    real = store.migration_files()
    store.connect(path).close()
    bad = (real[-1][0] + 1, "bad.sql", "CREATE TABLE half (id INTEGER);\nNOT SQL AT ALL;\n")
    monkeypatch.setattr(store, "migration_files", lambda: real + [bad])
    with pytest.raises(store.StoreError, match="bad.sql"):
        store.connect(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchone() is None


def test_the_pods_rebuild_keeps_every_row_and_key_and_lifts_the_provider_check(tmp_path,
                                                                              monkeypatch):
    """Migration 010 rebuilds `pods` (foreign keys off, then checked) so any registered pod
    provider can be stored; runs and ledger rows that point at a pod still do."""
    path = tmp_path / "db.sqlite"
    shipped = store.migration_files()
    before = [m for m in shipped if m[0] < 10]
    monkeypatch.setattr(store, "migration_files", lambda: before)
    conn = store.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO pods (name, provider, updated_at) VALUES ('x', 'lambda', 0)")
    conn.execute("INSERT INTO pods (id, name, provider, host_key, cost_per_hour, updated_at,"
                 " info) VALUES (7, 'gpu', 'runpod', 'ssh-ed25519 AAAA', 0.69, 1, '{\"gpu\": 1}')")
    conn.execute("INSERT INTO runs (id, pod_id, name, created_at) VALUES (3, 7, 'r', 0)")
    conn.execute("INSERT INTO cost_entries (kind, pod_id, run_id, amount, at) VALUES"
                 " ('pod_time', 7, 3, 1.5, 0)")
    conn.close()
    monkeypatch.setattr(store, "migration_files", lambda: shipped)
    conn = store.connect(path)
    pod = dict(conn.execute("SELECT * FROM pods WHERE id = 7").fetchone())
    assert (pod["name"], pod["provider"], pod["host_key"], pod["cost_per_hour"], pod["info"]) \
        == ("gpu", "runpod", "ssh-ed25519 AAAA", 0.69, '{"gpu": 1}')
    assert conn.execute("SELECT pod_id FROM runs WHERE id = 3").fetchone()[0] == 7
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.execute("INSERT INTO pods (name, provider, updated_at) VALUES ('x', 'lambda', 0)")
    with pytest.raises(sqlite3.IntegrityError):  # the keys are enforced again
        conn.execute("INSERT INTO runs (pod_id, name, created_at) VALUES (999, 'orphan', 0)")


def test_a_generation_in_flight_across_migration_011_keeps_what_follows_it(tmp_path,
                                                                            monkeypatch):
    """Its fal URLs become the service handle (with the request id and endpoint): the next
    daemon polls the request instead of submitting it again."""
    path = tmp_path / "db.sqlite"
    shipped = store.migration_files()
    monkeypatch.setattr(store, "migration_files", lambda: [m for m in shipped if m[0] < 11])
    conn = store.connect(path)
    urls = {"status_url": "https://q/s", "response_url": "https://q/r", "cancel_url": "https://q/c"}
    conn.execute("INSERT INTO generations (endpoint, request_id, urls, status, created_at,"
                 " updated_at) VALUES ('fal-ai/x', 'req-1', ?, 'submitted', 0, 0)",
                 (json.dumps(urls),))
    conn.close()
    monkeypatch.setattr(store, "migration_files", lambda: shipped)
    conn = store.connect(path)
    row = conn.execute("SELECT service, handle FROM generations").fetchone()
    assert row["service"] == "fal"
    assert json.loads(row["handle"]) == {**urls, "request_id": "req-1", "endpoint_id": "fal-ai/x"}


def test_migration_013_stores_paths_inside_the_workspace_relative_to_it(tmp_path, monkeypatch):
    """A workspace made before 013 can then be moved: its own files are found by relative
    paths; a source on another disk keeps its absolute path."""
    root = tmp_path / "ws"
    root.mkdir()
    path = root / "lorad.db"
    shipped = store.migration_files()
    monkeypatch.setattr(store, "migration_files", lambda: [m for m in shipped if m[0] < 13])
    conn = store.connect(path)
    conn.execute("INSERT INTO datasets (id, name, profile, created_at) VALUES (1, 'd', 'p', 0)")
    conn.execute("INSERT INTO clips (dataset_id, name, source_path, media_path, state, "
                 "created_at, updated_at) VALUES (1, 'c', ?, ?, 'ready', 0, 0)",
                 ("/elsewhere/a.mp4", f"{root.resolve()}/media/d/c.mp4"))
    conn.execute("INSERT INTO generations (endpoint, output_path, status, created_at, updated_at)"
                 " VALUES ('e', ?, 'done', 0, 0)", (f"{root.resolve()}x/not-inside.mp4",))
    conn.close()
    monkeypatch.setattr(store, "migration_files", lambda: shipped)
    conn = store.connect(path)
    assert tuple(conn.execute("SELECT source_path, media_path FROM clips").fetchone()) == \
        ("/elsewhere/a.mp4", "media/d/c.mp4")
    assert conn.execute("SELECT output_path FROM generations").fetchone()[0] == \
        f"{root.resolve()}x/not-inside.mp4"  # a sibling folder sharing the prefix stays
    assert store.local_path(conn, "media/d/c.mp4") == str(root.resolve() / "media/d/c.mp4")
