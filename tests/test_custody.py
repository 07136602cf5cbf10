"""The custody log (REG-7.1, invariant 6): every store and clear is in a hash chain that any
edit, deletion or reordering breaks, and `camdock audit` says so."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from camdock.catalog import custody, open_catalog, write_txn
from camdock.catalog import db as catalog_db
from conftest import camdock_cmd, make_camera, offload, run


def test_offload_writes_a_chain_that_verifies_and_tampering_is_found(
    station: dict[str, Path],
) -> None:
    cam, d1, d2, catalog = station["cam"], station["d1"], station["d2"], station["catalog"]
    make_camera(cam, 4)
    assert offload(cam, [d1, d2], catalog).ok
    db = open_catalog(catalog)
    try:
        actions = [r[0] for r in db.execute("SELECT action FROM custody_log ORDER BY id")]
        assert actions.count("store") == 4 and actions.count("clear") == 4
        assert custody.verify(db) == []
    finally:
        db.close()
    res = run(camdock_cmd("audit", "--catalog", str(catalog)))
    assert res.returncode == 0 and "8 entries, 4 recordings: intact" in res.stdout

    # The log refuses edits through SQL; someone who drops the guard still gets caught.
    con = sqlite3.connect(catalog)
    try:
        try:
            con.execute("UPDATE custody_log SET actor = 'x' WHERE id = 2")
            raise AssertionError("the append-only trigger did not fire")
        except sqlite3.IntegrityError as exc:
            assert "append-only" in str(exc)
        con.execute("DROP TRIGGER custody_no_update")
        con.execute("DROP TRIGGER custody_no_delete")
        con.execute(
            "UPDATE custody_log SET details = replace(details, '\"size\"', '\"sizE\"') WHERE id = 3"
        )
        con.execute("DELETE FROM custody_log WHERE id = 6")
        con.commit()
    finally:
        con.close()
    res = run(camdock_cmd("audit", "--catalog", str(catalog)))
    assert res.returncode == 1
    assert "entry 3: content does not match its hash (altered)" in res.stdout
    assert "entry 7: does not follow the entry before it" in res.stdout
    assert "no 'store' entry" in res.stdout or "no 'clear' entry" in res.stdout


def test_a_reader_opens_the_catalog_without_migrating_or_writing(tmp_path: Path) -> None:
    """The console runs as another user: it opens the catalog read-only (never migrates, never
    writes); a missing catalog is a plain error."""
    import pytest

    from camdock.catalog import open_readonly
    from camdock.errors import CatalogError

    with pytest.raises(CatalogError, match="no catalog"):
        open_readonly(tmp_path / "none.db")
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).close()  # an empty SQLite file: not a catalog, and left so (issue 29)
    with pytest.raises(CatalogError, match="empty file"):
        open_readonly(bare)
    assert bare.stat().st_size == 0
    made = tmp_path / "made.db"
    open_catalog(made).close()
    ro = open_readonly(made)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.execute("CREATE TABLE x (y)")
    finally:
        ro.close()


def test_an_offload_s_custody_entries_name_the_officer_not_only_the_machine(
    tmp_path: Path,
) -> None:
    """REG-4.1.2 / REG-7.1: the officer transfers the footage; the entry names them."""
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir(), d2.mkdir()
    make_camera(tmp_path / "cam", 1)
    assert offload(tmp_path / "cam", [d1, d2], tmp_path / "c.db").ok
    db = open_catalog(tmp_path / "c.db")
    actors = {r[0] for r in db.execute("SELECT actor FROM custody_log")}
    db.close()
    assert len(actors) == 1 and next(iter(actors)).startswith("王小明 (A12345) via camdock@")


def test_a_process_s_writers_queue_for_the_catalog_and_one_stuck_fails_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's writers to one catalog (however its path is spelt) wait on a lock of
    their own, not in SQLite's sleeping busy handler (issue 18); one that holds the catalog past
    the busy timeout makes the others fail with SQLite's own error, as before, never hang."""
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT", 1.0)
    (tmp_path / "alias").symlink_to(tmp_path)
    b = open_catalog(tmp_path / "alias" / "c.db")
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:  # SQLite connections stay in the thread that opened them
        a = open_catalog(tmp_path / "c.db")
        try:
            with write_txn(a):
                order.append("a")
                entered.set()
                release.wait(10)
        finally:
            a.close()

    try:
        holder = threading.Thread(target=hold)
        holder.start()
        assert entered.wait(5)
        threading.Timer(0.1, release.set).start()
        with write_txn(b):
            order.append("b")
        holder.join()
        assert order == ["a", "b"]

        release.clear(), entered.clear()
        holder = threading.Thread(target=hold)
        holder.start()
        assert entered.wait(5)
        with pytest.raises(sqlite3.OperationalError, match="locked"), write_txn(b):
            pass
        release.set()
        holder.join()
    finally:
        release.set()
        b.close()
