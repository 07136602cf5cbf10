"""Connections and transactions: the catalog in SQLite through sqlite-utils.

One connection per thread (sqlite3 objects refuse to cross threads), WAL with
``synchronous=FULL`` so a committed row survives power loss, and every write in
``BEGIN IMMEDIATE`` so a second writer waits for the lock instead of failing with
"database is locked" (TECH-NOTES §5). ``open_catalog`` migrates; ``open_readonly`` never does,
so a reader running as another user (the console) can open it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import os
import sqlite3
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from sqlite_utils import Database

from camdock.catalog.migrations import migrations
from camdock.errors import CatalogError, ExitCode

__all__ = [
    "DatabaseError",
    "Row",
    "Store",
    "catalog_error",
    "each",
    "file_of",
    "one",
    "one_as",
    "open_catalog",
    "open_readonly",
    "pk",
    "rows",
    "rows_as",
    "write_txn",
]

T = TypeVar("T")

# What SQLite raises, by the catalog's name: callers above the catalog catch it without
# importing sqlite3 (the catalog is the only place that knows it is SQLite).
DatabaseError = sqlite3.Error

BUSY_TIMEOUT = 30  # seconds a writer waits for the catalog's lock
# One lock per catalog file for this process's writers (see write_txn), and whose it is.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_LOCK_OF: weakref.WeakKeyDictionary[Database, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _connect(uri: str, *, uri_mode: bool) -> Database:
    # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves (see write_txn).
    conn = sqlite3.connect(uri, timeout=BUSY_TIMEOUT, isolation_level=None, uri=uri_mode)
    return Database(conn)


def open_catalog(path: Path | str) -> Database:
    """Open (and migrate) the catalog for writing; call once per thread that uses it. Raises
    CatalogError, with what is wrong in words, for anything but a usable catalog."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise CatalogError(f"catalog {path} is a directory, not a catalog file", 66)
        if not path.exists():
            _create(path)
        elif path.stat().st_size == 0:
            raise CatalogError(
                f"catalog {path} is an empty file, not a camdock catalog: nothing "
                "was written; remove it, or name the station's catalog",
                ExitCode.DATAERR,
            )
        db = _setup(_connect(str(path), uri_mode=False))
        try:
            _ours(db, path)
        except BaseException:
            db.close()
            raise
        with _LOCKS_LOCK:
            _LOCK_OF[db] = _WRITE_LOCKS.setdefault(str(path.resolve()), threading.Lock())
        try:
            # Under the write lock, so two processes opening an old catalog cannot both migrate;
            # a catalog already up to date (every engine of eight bays opening it at once) is
            # not made to queue for the lock just to find that out.
            if migrations.pending(db):
                with write_txn(db):
                    migrations.apply(db)
            from camdock.catalog import rowchain  # at run time: it reads through this module

            rowchain.install(db)
        except BaseException:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise catalog_error(path, exc) from exc
    except OSError as exc:
        raise CatalogError(f"catalog {path}: {exc.strerror or exc}", ExitCode.CANTCREAT) from exc
    return db


def _ours(db: Database, path: Path) -> None:
    """A SQLite file with tables but none of camdock's migrations is someone else's database:
    never migrated into a catalog (issue 29: a foreign file is never turned into a catalog)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "_sqlite_migrations" not in tables:
        raise CatalogError(
            f"catalog {path} is a SQLite database but not a camdock catalog "
            f"(tables: {', '.join(sorted(tables)[:5])}): nothing was written",
            ExitCode.DATAERR,
        )


def catalog_error(path: Path, exc: sqlite3.Error) -> CatalogError:
    """What a SQLite error means for the person running camdock."""
    text = str(exc)
    if "not a database" in text:
        return CatalogError(
            f"catalog {path} is not a camdock catalog (not SQLite): {text}", ExitCode.DATAERR
        )
    if "readonly" in text or "unable to open" in text:
        return CatalogError(
            f"catalog {path} cannot be written ({text}): read-only filesystem, or no permission?",
            ExitCode.CANTCREAT,
        )
    if "full" in text or "disk I/O" in text:
        return CatalogError(
            f"catalog {path}: {text}: the state disk is full or failing; "
            "nothing was cleared that is not catalogued"
        )
    return CatalogError(f"catalog {path}: {text}")


def file_of(db: Database) -> Path:
    """The file the open catalog ``db`` lives in."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2])


def _setup(db: Database) -> Database:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


def _create(path: Path) -> None:
    """A new catalog appears whole or not at all: built under a temp name, then linked into
    place (never over another process's), so a crash mid-creation leaves no empty catalog for a
    reader to trip over."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}.new")
    for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
        leftover.unlink(missing_ok=True)
    db = _setup(_connect(str(temp), uri_mode=False))
    try:
        with write_txn(db):
            migrations.apply(db)
        # Into the file now, and checked: a checkpoint that fails on close (a full disk) would
        # leave the schema only in the temp WAL, and a catalog linked without it is malformed.
        busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise sqlite3.OperationalError("the new catalog could not be checkpointed")
    except BaseException:
        db.close()
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    db.close()
    with contextlib.suppress(FileExistsError):  # another process created it first: use that
        os.link(temp, path)
    temp.unlink()
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_readonly(path: Path | str) -> Database:
    """Open an existing catalog read-only: no migration, no write, no journal-mode change."""
    path = Path(path).resolve()
    if not path.is_file():
        raise CatalogError(f"no catalog at {path}", ExitCode.NOINPUT)
    if path.stat().st_size == 0:
        raise CatalogError(
            f"catalog {path} is an empty file, not a camdock catalog", ExitCode.DATAERR
        )
    db = _connect(f"file:{path}?mode=ro", uri_mode=True)
    try:
        _ours(db, path)
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'recordings'").fetchone():
            raise CatalogError(
                f"catalog {path} is not a camdock catalog (no recordings table)", ExitCode.DATAERR
            )
    except sqlite3.Error as exc:
        db.close()
        raise catalog_error(path, exc) from exc
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def write_txn(db: Database) -> Iterator[Database]:
    """A write transaction that takes the lock up front, so the busy timeout applies.

    This process's writers to one catalog queue on a lock of their own first: SQLite's busy
    handler polls with growing sleeps (1, 2, 5 … 100 ms), so eight bays' engines finishing at
    once waited tens of milliseconds each for a lock held a few (issue 18). Other processes
    (the commands) still meet the busy timeout; a lock not had within it is not waited for
    longer, so nothing can wait on it for ever that SQLite would have let fail."""
    lock = _LOCK_OF.get(db)
    held = lock is not None and lock.acquire(timeout=BUSY_TIMEOUT)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            since = _journal_mark(db)
            yield db
            _chain_left_over(db)
            line = _journal_collect(db, since)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")
            if line is not None:  # after the commit: never a line for an act rolled back
                from camdock.catalog import journal

                journal.write(db, line)
    finally:
        if held:
            assert lock is not None
            lock.release()


def _journal_mark(db: Database) -> Any:
    """Where this transaction began, for the drives' journal (catalog/journal.py)."""
    from camdock.catalog import journal, rowchain

    return journal.mark(db) if rowchain.installed(db) else None


def _journal_collect(db: Database, since: Any) -> dict[str, Any] | None:
    from camdock.catalog import journal

    return None if since is None else journal.collect(db, since)


def _chain_left_over(db: Database) -> None:
    from camdock.catalog import custody, rowchain  # at run time: both read through this module

    if rowchain.installed(db):
        custody.chain_left_over(db)


def one(db: Database, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None."""
    cur = db.execute(sql, params)
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def rows(db: Database, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
    """Every row of a query as dicts."""
    cur = db.execute(sql, params)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def each(
    db: Database, sql: str, params: tuple[Any, ...] | list[Any] = ()
) -> Iterator[dict[str, Any]]:
    """Every row of a query as dicts, one at a time: a pass over the whole custody log keeps
    one row in memory, not a year of them (issue 29: the daemon's memory stays flat)."""
    cur = db.execute(sql, params)
    names = [c[0] for c in cur.description]
    while batch := cur.fetchmany(512):
        for r in batch:
            yield dict(zip(names, r, strict=True))


class Row:
    """A catalog row as a typed value: the base of the frozen dataclasses the catalog returns.

    ``from_row`` takes the columns the class names (a query may select more) and turns a status
    column into its enum; the stored text is the enum's value, so nothing written changes."""

    _enums: ClassVar[dict[str, type[enum.Enum]]]

    @classmethod
    def _enum_fields(cls) -> dict[str, type[enum.Enum]]:
        found = cls.__dict__.get("_enums")
        if found is None:
            found = {}
            for name, hint in typing.get_type_hints(cls).items():
                for t in typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,):
                    if isinstance(t, type) and issubclass(t, enum.Enum):
                        found[name] = t
            cls._enums = found
        return found

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The typed value of one row as SQLite gave it (column name → value)."""
        enums = cls._enum_fields()
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # every Row is a dataclass
            v = row[f.name]
            values[f.name] = v if v is None or f.name not in enums else enums[f.name](v)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The row's columns by name, as JSON leaves with them (an enum as its text)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


R = TypeVar("R", bound=Row)


def one_as(
    cls: type[R], db: Database, sql: str, params: tuple[Any, ...] | list[Any] = ()
) -> R | None:
    """The first row of a query as a ``cls``, or None."""
    found = one(db, sql, params)
    return None if found is None else cls.from_row(found)


def rows_as(
    cls: type[R], db: Database, sql: str, params: tuple[Any, ...] | list[Any] = ()
) -> list[R]:
    """Every row of a query as ``cls`` values."""
    return [cls.from_row(r) for r in rows(db, sql, params)]


def pk(value: object) -> int:
    """The rowid sqlite-utils reports after an insert (typed loosely by sqlite-utils)."""
    assert isinstance(value, int)
    return value


class Store:
    """The daemon's one catalog thread: every write the event loop asks for runs here, in
    submission order, so submission order is commit order (the outbox's sequence relies on it).

    Injected into the station and the publisher; sqlite3 objects never leave this thread.
    """

    def __init__(self, catalog: Path) -> None:
        self.catalog = catalog
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="catalog")

    def db(self) -> Database:
        """This thread's connection (opened, and migrated, on first use)."""
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_catalog(self.catalog)
        return db

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on the catalog thread and wait for its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self.db(), *args))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(db, *args)`` on the catalog thread without waiting."""
        return self._pool.submit(lambda: fn(self.db(), *args))

    def close(self) -> None:
        """Close the connection and the thread; safe to call twice."""

        def shut() -> None:
            db = getattr(self._local, "db", None)
            if db is not None:
                db.close()
                self._local.db = None

        with contextlib.suppress(RuntimeError):  # already shut down
            self._pool.submit(shut).result()
        self._pool.shutdown()
