"""Shared fixtures: camera volumes with generated recordings, real mounts when root; the
station's clock, set for every test."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from camdock import clock
from camdock.catalog import chainkey
from camdock.core.naming import DutySlots
from camdock.offload import OffloadEngine, OffloadReport, OffloadRequest
from daemontask import stop  # noqa: F401 - the tests import it from here
from stationtime import FAKETIME_LIB, STATION_NOW, at_station_time

TZ = ZoneInfo("Asia/Taipei")
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root for mounts and loop devices")


def pytest_configure(config: pytest.Config) -> None:
    if FAKETIME_LIB is None:
        raise pytest.UsageError(
            "libfaketime is missing (apt install faketime; make test as root installs it): "
            "the tests run camdock at a set moment, never at today's date"
        )


@pytest.fixture(autouse=True)
def station_clock() -> Iterator[clock.RunningClock]:
    """The station's clock in this process, running from STATION_NOW."""
    with clock.using(clock.RunningClock(STATION_NOW)) as running:
        yield running


@pytest.fixture(autouse=True)
def no_chain_key() -> Iterator[None]:
    """A station built in this process keys the entries it writes (catalog/chainkey): with its
    key, never the next test's."""
    yield
    chainkey.use(None)


def write_recording(path: Path, size: int, seed: int) -> str:
    """A recording of pseudo-random bytes; returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = hashlib.shake_256(seed.to_bytes(8, "little")).digest(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def make_camera(root: Path, count: int, size: int = 64 * 1024, seed: int = 0) -> dict[str, str]:
    """A camera volume like a real one: DCIM/100MEDIA/<date>_<time>_<n>.MP4. Returns name → sha."""
    out = {}
    for n in range(count):
        name = f"DCIM/100MEDIA/20261128_{8 + n // 60:02d}{n % 60:02d}00_{n:04d}.MP4"
        out[name] = write_recording(root / name, size + n * 997, seed * 1000 + n)
    return out


def request(source: Path, dests: list[Path], catalog: Path, **kw: object) -> OffloadRequest:
    args: dict[str, object] = {
        "source": source,
        "destinations": tuple(dests),
        "camera_id": "CAM0001",
        "officer_name": "王小明",
        "officer_badge": "A12345",
        "unit": "Zhongzheng 1st Precinct",
        "catalog": catalog,
        "slots": DutySlots.every(240),
        "tz": TZ,
        "clear": True,
        # The test directories share one filesystem; the refusal has tests of its own.
        "allow_one_filesystem": True,
    }
    args.update(kw)
    return OffloadRequest(**args)  # type: ignore[arg-type]


def offload(source: Path, dests: list[Path], catalog: Path, **kw: object) -> OffloadReport:
    hooks = {k: kw.pop(k) for k in ("progress", "after_fsync") if k in kw}
    return OffloadEngine(request(source, dests, catalog, **kw), **hooks).run()  # type: ignore[arg-type]


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every regular file under root (symlinks not followed), but
    camdock's own records on a drive (camdock-catalog/: catalog backups, custody heads; the day
    folders' manifests)."""
    out = {}
    for p in root.rglob("*"):
        if (
            p.is_file()
            and not p.is_symlink()
            and "camdock-catalog" not in p.relative_to(root).parts
            and p.name not in ("manifest.jsonl", "manifest-sha256.txt")
        ):
            out[str(p.relative_to(root))] = sha_of(p)
    return out


def camdock_cmd(*args: str) -> list[str]:
    """A camdock command, run at this test's "now"."""
    return at_station_time([sys.executable, "-m", "camdock", *args])


def offload_args(
    cam: Path,
    dests: list[Path],
    catalog: Path,
    *extra: str,
    officer: str = "王小明",
    badge: str = "A12345",
    camera: str = "CAM0001",
) -> list[str]:
    """The argv of `camdock offload` for a test camera (without the interpreter)."""
    to = [arg for d in dests for arg in ("--to", str(d))]
    return [
        "offload",
        str(cam),
        *to,
        "--camera",
        camera,
        "--officer",
        officer,
        "--badge",
        badge,
        "--catalog",
        str(catalog),
        *extra,
    ]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


@pytest.fixture
def station(tmp_path: Path) -> dict[str, Path]:
    """A camera volume, two destinations and a catalog path in a temp dir."""
    paths = {
        "cam": tmp_path / "cam",
        "d1": tmp_path / "footage",
        "d2": tmp_path / "backup",
        "catalog": tmp_path / "state" / "catalog.sqlite",
    }
    for k in ("cam", "d1", "d2"):
        paths[k].mkdir()
    return paths


# ---------------------------------------------------------------------------------------------
# Real filesystems (root only)


@contextlib.contextmanager
def tmpfs(where: Path, size: str, options: str = "") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def loop_ext4(
    image: Path, where: Path, size_mb: int, direct_io: bool = True
) -> Iterator[tuple[Path, str]]:
    """An ext4 image on a loop device (direct I/O, so reads really reach the image), mounted."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 not installed (e2fsprogs)")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", str(image)], check=True)
    dev = subprocess.run(
        ["losetup", "--find", "--show", f"--direct-io={'on' if direct_io else 'off'}", str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    where.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", dev, str(where)], check=True)
        try:
            yield where, dev
        finally:
            subprocess.run(["umount", str(where)], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
