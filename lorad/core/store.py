"""The SQLite store: one database per workspace, WAL, foreign keys, numbered migrations.

Every process (daemon, CLI, TUI) opens its own connection with :func:`connect`. Transactions are
kept short; writers wait on the busy timeout instead of failing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from lorad.core.errors import LoradError

BUSY_TIMEOUT_MS = 10_000
# A migration that rebuilds a table (to change a constraint) says so on a line of its own; it
# runs with foreign keys off, as https://sqlite.org/lang_altertable.html#otheralter says.
REBUILD_MARK = "-- lorad: rebuilds tables"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(LoradError):
    """The database cannot be used as it is (too new, corrupt, migration failed)."""


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every migration shipped with lorad, in order."""
    found = []
    for entry in resources.files("lorad_migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class Connection(sqlite3.Connection):
    """sqlite3's connection, knowing the folder its database lives in: the workspace root that
    stored paths are relative to (see :func:`stored_path`)."""

    root: Path | None = None


class StoreDamaged(StoreError):
    """The database file is missing its data or is not readable as SQLite. It is left as it is:
    the message says which file and how to recover."""


# SQLite's result codes for a damaged file: SQLITE_CORRUPT and SQLITE_NOTADB
DAMAGE_CODES = {11, 26}


def is_damage(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and \
        getattr(exc, "sqlite_errorcode", None) in DAMAGE_CODES


def damaged(path: Path | str, reason: str, *, offer_doctor: bool = True) -> StoreDamaged:
    path = Path(path)
    recovered = path.with_name(path.stem + "-recovered" + path.suffix)
    return StoreDamaged(
        f"the workspace database {path} is damaged ({reason}); it was left as it is. "
        + ("`lorad doctor` checks it. " if offer_doctor else "")
        + f"To save what SQLite can still read (with the sqlite3 command-line tool): "
        f"sqlite3 {path} .recover | sqlite3 {recovered} , then move {path.name} away and "
        f"{recovered.name} in its place")


def refuse_empty(path: Path) -> None:
    """SQLite takes a zero-byte file for a new database, and migrating it would make an empty
    workspace over the lost one without a word."""
    try:
        if path.stat().st_size:
            return
    except FileNotFoundError:
        return
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return  # the data is still in the write-ahead log
    raise StoreDamaged(
        f"the workspace database {path} is empty (0 bytes): this workspace's clips, captions "
        f"and runs are not in it. Put a backup back in its place, or, to start this workspace "
        f"again from nothing, move the empty file away (mv {path} {path}.empty) and run "
        f"`lorad init {path.parent}`")


def connect(path: Path | str, *, migrate: bool = True, create: bool = True) -> sqlite3.Connection:
    """Open the workspace database, applying pending migrations.

    Autocommit mode (isolation_level=None): callers group writes with :func:`transaction`.
    With `create=False` a missing file is an error instead of a new, empty store. A zero-byte
    or damaged file is refused (:class:`StoreDamaged`) and left untouched.
    """
    path = Path(path)
    if not create and not path.exists():
        raise StoreError(f"no database at {path}: create the workspace with "
                         f"`lorad init {path.parent}`")
    refuse_empty(path)
    try:
        return _open(path, migrate)
    except (sqlite3.DatabaseError, StoreError) as exc:
        cause = exc if isinstance(exc, sqlite3.DatabaseError) else exc.__cause__
        if cause is not None and is_damage(cause):
            raise damaged(path, str(cause)) from exc
        raise


def _open(path: Path, migrate: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False, factory=Connection)
    conn.root = Path(path).resolve().parent
    conn.create_function("lorad_root", 0, lambda: str(conn.root), deterministic=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrate:
            apply_migrations(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """A short write transaction. IMMEDIATE takes the write lock up front, so read-then-write
    sequences (claiming a job) cannot race another process. Inside another transaction it
    becomes a savepoint, so domain functions compose into one atomic change."""
    if conn.in_transaction:
        name = f"sp_{id(conn)}_{_depth(conn)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # a COMMIT that failed (a full disk) leaves the transaction open: every later write
        # would join it and never be committed
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_SAVEPOINTS: dict[int, int] = {}


def _depth(conn: sqlite3.Connection) -> int:
    _SAVEPOINTS[id(conn)] = _SAVEPOINTS.get(id(conn), 0) + 1
    return _SAVEPOINTS[id(conn)]


def schema_version(conn: sqlite3.Connection) -> int:
    """The newest migration applied (0 for a new database); a read, no write lock."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                        " name = 'schema_migrations'").fetchone():
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration newer than the database, each in its own transaction.

    Returns the names applied. A database newer than this code is refused: running old code on
    it could silently drop data the newer code relies on.
    """
    migrations = migration_files()
    known = migrations[-1][0] if migrations else 0
    current = schema_version(conn)  # a read: opening an up-to-date store takes no write lock
    if current > known:
        raise StoreError(
            f"this database is at schema version {current}, but this lorad only knows up to "
            f"{known}; upgrade lorad (pip install -U lorad) before opening it"
        )
    applied = []
    if current < known:
        with transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
                         " KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
            current = schema_version(conn)  # another process may have migrated meanwhile
    for number, name, sql in migrations:
        if number <= current:
            continue
        rebuilds = REBUILD_MARK in sql
        if rebuilds:  # SQLite's way to change a table: keys off, rebuild, check the keys
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with transaction(conn):
                if schema_version(conn) >= number:  # another process applied it meanwhile
                    continue
                before = _broken_keys(conn) if rebuilds else set()
                for statement in _split_sql(sql):
                    conn.execute(statement)
                broken = _broken_keys(conn) - before if rebuilds else set()
                if broken:  # only what the rebuild broke: older damage is not its to judge
                    table, rowid, parent, _n = sorted(broken)[0]
                    raise sqlite3.IntegrityError(
                        f"the rebuild left {len(broken)} broken foreign key(s), e.g. {table} row "
                        f"{rowid} -> {parent}")
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, time.time()),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"migration {name} failed: {exc}") from exc
        finally:
            if rebuilds:
                conn.execute("PRAGMA foreign_keys = ON")
        applied.append(name)
    return applied


def _broken_keys(conn: sqlite3.Connection) -> set[tuple]:
    return {tuple(r) for r in conn.execute("PRAGMA foreign_key_check")}


def _split_sql(sql: str) -> Iterator[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement and not all(
                ln.strip().startswith("--") or not ln.strip() for ln in statement.splitlines()
            ):
                yield statement
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        yield buffer.strip()


if TYPE_CHECKING:
    import sqlite_utils.db


def table(conn: sqlite3.Connection, name: str) -> sqlite_utils.db.Table:
    """sqlite-utils' table API on one of lorad's connections, for inserts, updates and upserts
    by primary key (lists and dicts are stored as JSON). Inside a `transaction` its writes
    become part of it (sqlite-utils nests them in savepoints). Imported here, at the first
    write: it brings numpy along, a fifth of a second the TUI's start need not wait for."""
    import sqlite_utils

    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False
                                 ).table(name)


def root_of(conn: sqlite3.Connection) -> Path:
    """The folder holding the connection's database file: the workspace root."""
    root = getattr(conn, "root", None)
    if root is None:
        root = Path(conn.execute("PRAGMA database_list").fetchone()[2]).parent
    return root


def stored_path(conn: sqlite3.Connection, path: str | Path | None) -> str | None:
    """How a path is kept in the store: relative to the workspace when it is inside it, so the
    folder can be moved or copied whole; absolute otherwise (a source on another disk)."""
    if path is None or str(path) == "":
        return None if path is None else ""
    given = Path(path)
    if not given.is_absolute():
        return str(given)  # already relative to the workspace
    root = root_of(conn)
    for candidate in (given, given.resolve()):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            continue
    return str(given)


def local_path(conn: sqlite3.Connection | Path, stored: str | None) -> str | None:
    """The file a stored path names on this machine now (see :func:`stored_path`). Pass the
    root instead of a connection when reading many rows."""
    if not stored or os.path.isabs(stored):
        return stored
    root = conn if isinstance(conn, Path) else root_of(conn)
    return str(root / stored)


def chunked(ids: list, size: int = 500) -> Iterator[list]:
    """`ids` in pieces small enough for one `IN (...)` each (SQLite caps the parameters)."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def data_version(conn: sqlite3.Connection) -> int:
    """Changes when another connection commits: the cheap signal the TUI polls."""
    return conn.execute("PRAGMA data_version").fetchone()[0]
