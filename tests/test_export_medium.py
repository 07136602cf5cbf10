"""Copying to an export medium (REG-5, Annex 3; invariant 5; issue 29 item 4): the target is
resolved once, component by component with O_NOFOLLOW, so a link on the stick never takes the
daemon (root) elsewhere; every problem of the medium is one bilingual sentence and a 409, never
"內部錯誤 internal error"; a copy that fails part-way leaves no folder, and never a manifest.
Through the console against the daemon's real side of the control socket (test_web_pages's
station), on real folders and real tmpfs mounts (the tests run as root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from test_web_pages import Station, _approved, _refused, _step, _to, station

__all__ = ["station"]  # the fixture, imported for these tests


ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextmanager
def _tmpfs(where: Path, *options: str) -> Iterator[Path]:
    """A real tmpfs mounted at ``where`` (mode 755) with ``options``."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("mode=755", *options))
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _copy(station: Station, to: str) -> tuple[str, object]:
    number, custodian = _approved(station)
    return number, _step(custodian, number, "copy", to=to)


def _medium_refused(r: object, why: str) -> None:
    _refused(r, 409, why)
    assert "內部錯誤" not in r.text and "internal error" not in r.text  # type: ignore[attr-defined]


def test_a_link_on_the_medium_is_refused_and_nothing_is_written_where_it_points(
    station: Station, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # outside the export roots
    usb = station.tmp / "usb"
    usb.mkdir()
    (usb / "link").symlink_to(elsewhere)
    number, r = _copy(station, str(usb / "link"))
    _medium_refused(r, "is a symbolic link: refused")
    assert list(elsewhere.iterdir()) == []
    # a link part-way down the path, and a dangling one, alike
    r = _step(station.client("C1"), number, "copy", to=str(usb / "link" / "sub"))
    _medium_refused(r, "is a symbolic link: refused")
    (usb / "dangling").symlink_to(station.tmp / "gone")
    r = _step(station.client("C1"), number, "copy", to=str(usb / "dangling"))
    _medium_refused(r, "is a symbolic link: refused")
    assert sorted(p.name for p in usb.iterdir()) == ["dangling", "link"]


@pytest.mark.parametrize(
    ("make", "to", "why"),
    [
        ("file", "afile", "is not a folder"),
        (None, "missing", "does not exist (is the medium inserted?)"),
        (None, "x" * 300, "has a name that is too long"),
        (None, "usb\0evil", "contains a NUL byte"),
        ("folder", "usb", "exists: a copy goes into a new folder"),
    ],
)
def test_each_bad_target_is_a_clear_409(
    station: Station, make: str | None, to: str, why: str
) -> None:
    if make == "file":
        (station.tmp / to).write_text("not a folder")
    number, _ = _copy(station, str(station.tmp / "warmup-missing"))
    if make == "folder":
        (station.tmp / to / number).mkdir(parents=True)
    r = _step(station.client("C1"), number, "copy", to=str(station.tmp) + "/" + to)
    _medium_refused(r, why)


@ROOT
def test_a_read_only_medium_is_a_clear_409(station: Station) -> None:
    with _tmpfs(station.tmp / "ro", "ro", "size=1m") as ro:
        _, r = _copy(station, str(ro))
        _medium_refused(r, "is on a read-only medium")


@ROOT
def test_a_full_medium_leaves_no_partial_copy_and_no_manifest(station: Station) -> None:
    with _tmpfs(station.tmp / "full", "size=4k") as full:  # one page: the 7.5 KB clip won't fit
        number, r = _copy(station, str(full))
        _medium_refused(r, "is on a medium that is full")
        assert list(full.iterdir()) == []  # the partial folder removed
        # the request is still there to copy onto a stick with room
        room = station.tmp / "room"
        room.mkdir()
        r = _step(station.client("C1"), number, "copy", to=str(room))
        assert r.status_code == 303 and "copied and verified" in _to(r)
        assert (room / number / "MANIFEST.sha256").exists()


@ROOT
def test_a_pulled_medium_is_a_clear_409(station: Station) -> None:
    """The stick gone between choosing it and the copy: its mount point is an empty folder
    on the SD card no more (lazily unmounted and removed)."""
    with _tmpfs(station.tmp / "stick", "size=1m") as stick:
        (stick / "photos").mkdir()
        target = stick / "photos"
    os.rmdir(station.tmp / "stick")
    _, r = _copy(station, str(target))
    _medium_refused(r, "does not exist (is the medium inserted?)")
