"""The daily seal (REG-4.2.5): a day's footage in an AES-256 7z archive per destination, checked
against the catalog by reading it back, confirmed by a supervisor; opened with the real `7z`."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from camdock.catalog import custody, open_catalog
from camdock.errors import ExitCode
from conftest import camdock_cmd, make_camera, offload, run, sha_of, write_recording
from test_mqtt import message_for, validator

PASSWORD = "封存密碼 correct horse battery"  # noqa: S105 - a test's own key
DAY = "2026-11-28"  # make_camera's recordings

needs_7z = pytest.mark.skipif(shutil.which("7z") is None, reason="7z not installed (p7zip-full)")


def _station(
    tmp_path: Path, files: int = 3, size: int = 64 * 1024
) -> tuple[Path, Path, Path, Path]:
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(tmp_path / "cam", files, size=size, seed=4)
    assert offload(tmp_path / "cam", [d1, d2], catalog).ok
    key = tmp_path / "seal.key"
    key.write_text(PASSWORD + "\n", encoding="utf-8")
    key.chmod(0o600)
    return d1, d2, catalog, key


def _seal(catalog: Path, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(camdock_cmd("seal", *args, "--catalog", str(catalog), "--password-file",
                           str(key)))  # fmt: skip


def _plain(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha_of(p) for p in root.rglob("*.mp4")}


@needs_7z
def test_a_day_sealed_opens_with_7z_and_the_password_only(tmp_path: Path) -> None:
    d1, d2, catalog, key = _station(tmp_path)
    before = {d: _plain(d) for d in (d1, d2)}
    made = _seal(catalog, key, "create", DAY, "--by", "保管人 陳", "--json")
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)["seal"]
    assert doc["generation"] == 1 and doc["members"] == 3 and len(doc["archives"]) == 2
    assert PASSWORD not in made.stdout + made.stderr
    for d in (d1, d2):
        archive = d / "2026" / "11" / "20261128-1.7z"
        assert archive.is_file() and not list(archive.parent.glob(".*.tmp"))
        out = tmp_path / f"x-{d.name}"
        ok = run(["7z", "x", f"-p{PASSWORD}", f"-o{out}", str(archive)])
        assert ok.returncode == 0, ok.stdout
        assert _plain(out) == before[d]  # every recording, byte for byte, under its path
        wrong = run(["7z", "x", "-pwrong password", f"-o{tmp_path / 'w'}", str(archive)])
        assert wrong.returncode != 0
        listed = run(["7z", "l", "-p", str(archive)], input="")  # no password: no names either
        assert "王小明" not in listed.stdout
        assert _plain(d) == before[d]  # the plain files stay
    verified = _seal(catalog, key, "verify", DAY)
    assert verified.returncode == 0 and "intact" in verified.stdout
    # The custodian who sealed may not confirm; a supervisor does, once.
    same = _seal(catalog, key, "confirm", DAY, "--by", "保管人 陳")
    assert same.returncode == ExitCode.NOPERM and "someone" in same.stderr
    good = _seal(catalog, key, "confirm", DAY, "--by", "所長 林", "--json")
    assert good.returncode == 0, good.stderr
    again = _seal(catalog, key, "confirm", DAY, "--by", "所長 林")
    assert again.returncode == ExitCode.NOPERM and "already confirmed by 所長 林" in again.stderr
    status = json.loads(_seal(catalog, key, "status", "--json").stdout)
    assert {(s["sealed_by"], s["confirmed_by"]) for s in status["seals"]} == {
        ("保管人 陳 (unverified actor)", "所長 林 (unverified actor)")  # a bare catalog: issue 27
    }
    assert status["unsealed_days"] == []
    # Members are JSON objects, not a JSON string inside JSON (issue 29).
    for s in status["seals"]:
        assert len(s["members"]) == 3 and all(len(m["sha256"]) == 64 for m in s["members"])
    db = open_catalog(catalog)
    assert custody.verify(db) == []
    actions = [r[0] for r in db.execute("SELECT action FROM custody_log WHERE action LIKE 'seal%'")]
    assert actions == ["seal", "seal-confirm"]
    db.close()


def test_the_password_never_comes_from_anywhere_unsafe(tmp_path: Path) -> None:
    from camdock.config import ConfigError, parse
    from stationcfg import TEMPLATE

    _, _, catalog, key = _station(tmp_path, files=1)
    key.chmod(0o644)
    loose = _seal(catalog, key, "create", DAY, "--by", "c")
    assert loose.returncode == ExitCode.NOINPUT and "root only" in loose.stderr
    key.chmod(0o600)
    key.write_text("short")
    short = _seal(catalog, key, "create", DAY, "--by", "c")
    assert short.returncode == ExitCode.NOINPUT and "12 characters" in short.stderr
    import tomllib

    with pytest.raises(ConfigError) as exc:
        parse(tomllib.loads(TEMPLATE.format(root="/tmp/x") + '[seal]\npassword = "x"\n'))
    assert any(p.startswith("seal.password: the password never goes") for p in exc.value.problems)
    assert "Traceback" not in loose.stderr + short.stderr


def test_a_damaged_copy_is_never_sealed_and_a_damaged_archive_is_found(tmp_path: Path) -> None:
    d1, d2, catalog, key = _station(tmp_path)
    victim = next(iter(sorted(d2.rglob("*.mp4"))))
    good = victim.read_bytes()
    victim.write_bytes(b"\0" * len(good))
    bad = _seal(catalog, key, "create", DAY, "--by", "c")
    assert bad.returncode == ExitCode.IOERR and "not sealed" in bad.stderr
    assert not list(d1.rglob("*.7z")) and not list(d2.rglob("*.7z")) and not list(
        d2.rglob(".*.tmp"))  # fmt: skip
    victim.write_bytes(good)
    assert _seal(catalog, key, "create", DAY, "--by", "c").returncode == 0
    [archive] = d1.rglob("*.7z")  # generation 2: the failed one's number is not reused
    with open(archive, "r+b") as f:
        f.seek(archive.stat().st_size // 2)
        f.write(b"\xa5" * 64)
    found = _seal(catalog, key, "verify", DAY, "--json")
    assert found.returncode == ExitCode.FAILED
    problems = json.loads(found.stdout)["problems"]
    assert problems and all(str(d1) in p for p in problems)


def test_a_changed_day_is_sealed_again_and_the_old_archive_goes(tmp_path: Path) -> None:
    d1, d2, catalog, key = _station(tmp_path)
    assert _seal(catalog, key, "create", DAY, "--by", "c").returncode == 0
    assert _seal(catalog, key, "confirm", DAY, "--by", "s").returncode == 0
    late = tmp_path / "late"  # a camera docked late, with footage of the sealed day
    write_recording(late / "DCIM/100MEDIA/20261128_231500_0077.MP4", 4096, 77)
    assert offload(late, [d1, d2], catalog, camera_id="CAM0009").ok
    stale = _seal(catalog, key, "verify", DAY)
    assert stale.returncode == ExitCode.FAILED and "a new seal is due" in stale.stdout
    unconfirmable = _seal(catalog, key, "confirm", DAY, "--by", "s2")
    assert unconfirmable.returncode == ExitCode.NOPERM and "seal it again" in unconfirmable.stderr
    again = _seal(catalog, key, "create", DAY, "--by", "c", "--json")
    assert json.loads(again.stdout)["seal"]["generation"] == 2
    assert json.loads(again.stdout)["seal"]["members"] == 4
    for d in (d1, d2):
        assert sorted(p.name for p in d.rglob("*.7z")) == ["20261128-2.7z"]
    status = json.loads(_seal(catalog, key, "status", "--json").stdout)["seals"]
    assert {s["generation"] for s in status} == {2} and not any(s["confirmed_by"] for s in status)


@needs_7z
def test_destroying_footage_of_a_sealed_day_seals_it_again_without_it(tmp_path: Path) -> None:
    from test_retention import _age, _approved_list

    d1, d2, catalog, key = _station(tmp_path)
    assert _seal(catalog, key, "create", DAY, "--by", "c").returncode == 0
    _age(catalog)  # a year on: the day is now 2025-11-28, the archive still holds all three
    db = open_catalog(catalog)
    rec, rel = db.execute("SELECT id, relpath FROM recordings ORDER BY id").fetchone()
    db.close()
    list_id = _approved_list(["--catalog", str(catalog)], "保管人 陳", "分局長 王",
                             "--recording", str(rec))  # fmt: skip
    base = ["retention", "execute", "--list", str(list_id), "--by", "保管人 陳",
            "--catalog", str(catalog)]  # fmt: skip
    nokey = run(camdock_cmd(*base))
    assert nokey.returncode == ExitCode.NOPERM and "sealed" in nokey.stderr
    assert (d1 / rel).is_file()  # refused before anything was removed
    done = run(camdock_cmd(*base, "--password-file", str(key)))
    assert done.returncode == 0, done.stderr
    for d in (d1, d2):
        [archive] = d.rglob("*.7z")
        assert archive.name == "20261128-2.7z"
        listed = run(["7z", "l", "-slt", f"-p{PASSWORD}", str(archive)])
        assert listed.returncode == 0 and rel not in listed.stdout
        assert listed.stdout.count("Path = 2026/11/28/") == 2


@pytest.mark.slow
def test_sigkill_while_sealing_leaves_the_plain_files_and_no_half_seal(tmp_path: Path) -> None:
    d1, d2, catalog, key = _station(tmp_path, files=24, size=2 << 20)
    before = {d: _plain(d) for d in (d1, d2)}
    rng = random.Random(11)
    args = ("seal", "create", DAY, "--by", "c", "--catalog", str(catalog), "--password-file",
            str(key))  # fmt: skip
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(
            camdock_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill while an archive is being written: the first run as soon as its temp file
        # appears (so at least one kill lands however fast the machine), later ones at a random
        # moment after that (writing, reading back, between the drives, committing).
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(next(d.rglob(".*.tmp"), None) for d in (d1, d2)):
                break
            time.sleep(0.002)
        time.sleep(0 if kills == 0 else rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        for d in (d1, d2):
            assert _plain(d) == before[d]
        conn = sqlite3.connect(catalog)
        verified = {(r[0], r[1]) for r in conn.execute(
            "SELECT destination, path FROM seals WHERE state = 'verified'")}  # fmt: skip
        conn.close()
        for d in (d1, d2):  # a final-named archive exists only as a recorded, verified seal
            for archive in d.rglob("*.7z"):
                rel = str(archive.relative_to(d))
                assert (str(d), rel) in verified or _recorded_later(catalog, str(d), rel)
    final = run(camdock_cmd(*args))
    assert final.returncode == 0, final.stderr
    assert run(camdock_cmd("seal", "verify", DAY, "--catalog", str(catalog), "--password-file",
                           str(key))).returncode == 0  # fmt: skip
    assert not [p for d in (d1, d2) for p in d.rglob(".*.tmp")]
    assert kills >= 1


def _recorded_later(catalog: Path, root: str, rel: str) -> bool:
    """A final-named archive of a generation still 'writing' (killed between its link and the
    commit): the next run removes it; it is never taken as a seal."""
    conn = sqlite3.connect(catalog)
    try:
        return conn.execute("SELECT 1 FROM seals WHERE destination = ? AND path = ? AND state = "
                            "'writing'", (root, rel)).fetchone() is not None  # fmt: skip
    finally:
        conn.close()


def test_seal_events_follow_the_contract(tmp_path: Path) -> None:
    from camdock.events import Topics
    from camdock.services.seal import Key, Sealing, confirm_day, seal_day

    _, _, catalog, _ = _station(tmp_path, files=2)
    sealing = Sealing(Key("2026-A", PASSWORD), topics=Topics("camdock", "test-01"))
    db = open_catalog(catalog)
    made = seal_day(db, sealing, date(2026, 11, 28), "c")
    assert made is not None and {a.key_id for a in made.archives} == {"2026-A"}
    confirm_day(db, sealing, date(2026, 11, 28), "s")
    payloads = [json.loads(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    assert [p["type"] for p in payloads] == ["day-sealed", "seal-confirmed"]
    for body in payloads:
        validator(message_for(body["type"])).validate(body)
    assert PASSWORD not in json.dumps(payloads, ensure_ascii=False)
    db.close()


def test_one_seal_at_a_time(tmp_path: Path) -> None:
    import fcntl

    _, _, catalog, key = _station(tmp_path, files=1)
    with open(f"{catalog}.seal.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the daemon's pass, say
        busy = _seal(catalog, key, "create", DAY, "--by", "c")
    assert busy.returncode == ExitCode.TEMPFAIL and "another seal" in busy.stderr
    assert _seal(catalog, key, "create", DAY, "--by", "c").returncode == 0


@needs_7z
def test_plain_files_go_after_a_confirmed_seal_and_footage_lives_on_in_the_archive(
    tmp_path: Path,
) -> None:
    from camdock.services.attribute import attribute_recording
    from camdock.services.seal import Key, Sealing, confirm_day, remove_plain, seal_day
    from test_retention import _age, _approved_list

    d1, d2, catalog, key = _station(tmp_path)
    before = _plain(d1)
    sealing = Sealing(Key("1", PASSWORD))
    day = date(2026, 11, 28)
    db = open_catalog(catalog)
    seal_day(db, sealing, day, "c")
    assert remove_plain(db, sealing, 0, "c") == [] and _plain(d1) == before  # not confirmed
    confirm_day(db, sealing, day, "s")
    assert remove_plain(db, sealing, 0, "c") == []
    assert _plain(d1) == {} and _plain(d2) == {}
    marked = db.execute("SELECT count(*) FROM copies WHERE plain_removed_at IS NOT NULL")
    assert marked.fetchone()[0] == 6
    out = tmp_path / "out"
    [archive] = d1.rglob("*.7z")
    assert run(["7z", "x", f"-p{PASSWORD}", f"-o{out}", str(archive)]).returncode == 0
    assert _plain(out) == before  # the archive holds every recording
    # A late recording for the day: sealed again, the old members taken out of the archive.
    late = tmp_path / "late"
    write_recording(late / "DCIM/100MEDIA/20261128_231500_0077.MP4", 4096, 77)
    db.close()
    assert offload(late, [d1, d2], catalog, camera_id="CAM0009").ok
    db = open_catalog(catalog)
    made = seal_day(db, sealing, day, "c")
    assert made is not None and made.members == 4 and made.generation == 2
    assert not list(d1.rglob("*.extract"))
    from camdock.services.seal import verify_day

    assert verify_day(db, sealing, day) == []
    rec = db.execute("SELECT id FROM recordings ORDER BY id").fetchone()[0]
    from camdock.errors import Refused
    from camdock.model import Officer

    with pytest.raises(Refused, match="sealed"):
        attribute_recording(db, rec, Officer("B2", "李美玲", ""), "c")
    db.close()
    # A year on, one recording destroyed: the day sealed again without it, from the archive.
    _age(catalog)
    list_id = _approved_list(["--catalog", str(catalog)], "c", "p", "--recording", str(rec))
    done = run(camdock_cmd("retention", "execute", "--list", str(list_id), "--by", "c",
                           "--catalog", str(catalog), "--password-file", str(key)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = open_catalog(catalog)
    [current] = [s for s in db.execute("SELECT members, generation FROM seals WHERE state = "
                                       "'verified' AND destination = ?", (str(d1),))]  # fmt: skip
    assert current[1] == 3 and rec not in [m[0] for m in json.loads(current[0])]
    assert verify_day(db, sealing, day) == []
    assert custody.verify(db) == []
    db.close()


def test_a_seal_gives_way_to_a_dock_and_leaves_nothing_half_done(tmp_path: Path) -> None:
    """The daemon's seal pauses as soon as a bay offloads (the offload must not slow down):
    the unfinished generation is removed, the day stays due, the next try seals it."""
    from camdock.adapters.archive import ArchivePaused
    from camdock.catalog import seals
    from camdock.services.seal import Key, Sealing, seal_day, seal_pass

    d1, d2, catalog, _ = _station(tmp_path, files=2)
    db = open_catalog(catalog)
    calls = [0]

    def bay_busy_after_a_while() -> bool:
        calls[0] += 1
        return calls[0] > 3

    sealing = Sealing(Key("1", PASSWORD), pause=bay_busy_after_a_while)
    with pytest.raises(ArchivePaused):
        seal_day(db, sealing, date(2026, 11, 28), "c")
    assert not list(d1.rglob("*.7z*")) and not list(d2.rglob(".*.tmp"))
    assert DAY in seals.dirty(db) and seals.current(db, date(2026, 11, 28)) == []
    made, alarms = seal_pass(db, sealing, date(2026, 11, 29), "c", 2)
    assert made == [] and not any("could not be sealed" in a for a in alarms)  # paused: no alarm
    sealing = Sealing(Key("1", PASSWORD))
    made, _ = seal_pass(db, sealing, date(2026, 11, 29), "c", 2)
    assert [m.day for m in made] == [date(2026, 11, 28)] and DAY not in seals.dirty(db)
    db.close()


_READ_BACK_RSS = """
import resource, sys
from pathlib import Path
from camdock.adapters import archive
path, out, sha, size = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
got = archive.read_back(path, sys.argv[5])
assert got.members == {"big.mp4": (sha, size)}, got
archive.extract(path, sys.argv[5], {"big.mp4": archive.Member("big.mp4", out, sha, size)})
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10)
"""


def test_reading_a_seal_back_holds_a_block_not_a_recording(tmp_path: Path) -> None:
    """py7zr's read side is bounded by its decompressor's block, not by the free memory it
    sizes its chunks from (adapters/_sevenzip.py): a 96 MiB member is read back and extracted
    with a few MiB more than the process had before."""
    from camdock.adapters import archive

    src, size = tmp_path / "big.mp4", 96 << 20
    with src.open("wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    sha, sealed = sha_of(src), tmp_path / "day.7z"
    archive.write(sealed, [archive.Member("big.mp4", src, sha, size)], PASSWORD)
    done = run([sys.executable, "-c", _READ_BACK_RSS, str(sealed), str(tmp_path / "out.mp4"),
                sha, str(size), PASSWORD])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 32, f"peak RSS grew by {done.stdout.strip()} MiB"
    assert sha_of(tmp_path / "out.mp4") == sha


def _day_files(root: Path, count: int = 3, size: int = 1 << 20) -> list[tuple[Path, str]]:
    made = []
    for i in range(count):
        f = root / "2026" / "11" / "28" / f"{i:02d}_王小明.mp4"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(os.urandom(size))
        made.append((f, sha_of(f)))
    return made


def test_days_sealed_by_py7zr_before_the_change_still_read_back_and_extract(
    tmp_path: Path,
) -> None:
    """The seal moved from py7zr to the 7-Zip program (issue 28): the format is the same, so an
    archive py7zr wrote (AES-256, encrypted headers, stored) reads back, member by member, and
    an archive the program writes opens in py7zr with the same (non-ASCII) password."""
    import py7zr

    from camdock.adapters import archive

    files = _day_files(tmp_path)
    old = tmp_path / "old.7z"
    filters = [{"id": py7zr.FILTER_COPY}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
    with py7zr.SevenZipFile(old, "w", password=PASSWORD, header_encryption=True,
                            filters=filters) as z:  # fmt: skip
        for f, _ in files:
            z.write(f, f"28/{f.name}")
    back = archive.read_back(old, PASSWORD)
    assert back.members == {f"28/{f.name}": (sha, f.stat().st_size) for f, sha in files}
    assert (back.sha256, back.size) == (sha_of(old), old.stat().st_size)
    f, sha = files[1]
    out = tmp_path / "out.mp4"
    archive.extract(old, PASSWORD, {f"28/{f.name}": archive.Member("x", out, sha, 1 << 20)})
    assert sha_of(out) == sha

    new = tmp_path / "new.7z"
    members = [archive.Member(f"28/{f.name}", f, sha, 1 << 20) for f, sha in files]
    archive.write(new, members, PASSWORD)
    with py7zr.SevenZipFile(new, "r", password=PASSWORD) as z:
        assert sorted(z.getnames()) == sorted(m.name for m in members)
        assert z.testzip() is None
    with pytest.raises(archive.ArchiveError, match="wrong password"):
        archive.read_back(new, "another password")


def test_the_seal_password_never_shows_in_a_process_list(tmp_path: Path) -> None:
    """7-Zip is given the password on its standard input, not its arguments (which every user
    sees in /proc/PID/cmdline) nor its environment: watched while a seal is written and read."""
    import threading

    from camdock.adapters import archive

    files = _day_files(tmp_path, count=4, size=16 << 20)
    members = [archive.Member(f"a/{f.name}", f, sha, 16 << 20) for f, sha in files]
    seen: list[str] = []
    leaks: list[str] = []
    done = threading.Event()
    secret = PASSWORD.encode()

    def watch() -> None:
        while not done.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmd = (proc / "cmdline").read_bytes()
                    env = (proc / "environ").read_bytes()
                except OSError:
                    continue
                if b"7z" in cmd:
                    seen.append(cmd.decode(errors="replace"))
                    if secret in cmd or secret in env:
                        leaks.append(cmd.decode(errors="replace"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sealed = tmp_path / "day.7z"
        archive.write(sealed, members, PASSWORD)  # member names differ: hard links staged
        back = archive.read_back(sealed, PASSWORD)
    finally:
        done.set()
        watcher.join()
    assert back.members == {m.name: (m.sha256, m.size) for m in members}
    assert not list(tmp_path.glob(".*.names")), "the staged names are removed"
    assert seen, "the watcher saw 7-Zip run"
    assert not leaks


def test_a_year_of_key_rotations_every_seal_reads_with_its_own_key_from_the_ring(
    tmp_path: Path,
) -> None:
    """Key rotation (issue 28, REG-4.2.5): each quarter seals under a new key id; a day sealed
    under an earlier key names the key it needs, and reads back (seal verify, audit --full)
    with a root-only folder of ``<key id>.key`` files."""
    d1, d2, catalog = tmp_path / "footage", tmp_path / "backup", tmp_path / "c.db"
    d1.mkdir(), d2.mkdir()
    days = ["2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15"]
    cam = tmp_path / "cam"
    for i, day in enumerate(days):
        write_recording(cam / f"DCIM/100MEDIA/{day.replace('-', '')}_091000_{i:04d}.MP4",
                        8192, i)  # fmt: skip
    assert offload(cam, [d1, d2], catalog).ok
    ring = tmp_path / "ring"
    ring.mkdir(mode=0o700)
    keys = {}
    for i, day in enumerate(days):
        kid = f"2026-{'ABCD'[i]}"
        keys[kid] = key = ring / f"{kid}.key"
        key.write_text(f"{PASSWORD} {kid}\n", encoding="utf-8")
        key.chmod(0o600)
        made = _seal(catalog, key, "create", day, "--by", "c", "--key-id", kid)
        assert made.returncode == 0, made.stderr
    latest = keys["2026-D"]
    old = _seal(catalog, latest, "verify", days[0], "--key-id", "2026-D")
    assert old.returncode == ExitCode.FAILED
    assert "sealed under key 2026-A" in old.stdout and "key ring" in old.stdout
    for day in days:
        ok = _seal(catalog, latest, "verify", day, "--key-id", "2026-D", "--key-dir", str(ring))
        assert ok.returncode == 0, ok.stdout + ok.stderr
    only_ring = run(camdock_cmd("seal", "verify", days[1], "--catalog", str(catalog),
                                "--key-dir", str(ring)))  # fmt: skip
    assert only_ring.returncode == 0, only_ring.stdout + only_ring.stderr
    no_new = run(camdock_cmd("seal", "create", "2026-11-28", "--by", "c", "--catalog",
                             str(catalog), "--key-dir", str(ring),
                             "--key-id", "2026-E"))  # fmt: skip
    assert no_new.returncode == ExitCode.NOINPUT and "current seal key 2026-E" in no_new.stderr
    audit = run(camdock_cmd("audit", "--full", "--catalog", str(catalog), "--key-dir", str(ring),
                            "--json"))  # fmt: skip
    findings = json.loads(audit.stdout)["findings"]
    assert not [f for f in findings if f["kind"] == "archive"], findings
    ring.chmod(0o755)
    loose = _seal(catalog, latest, "verify", days[0], "--key-dir", str(ring))
    assert loose.returncode == ExitCode.NOINPUT and "chmod 700" in loose.stderr
