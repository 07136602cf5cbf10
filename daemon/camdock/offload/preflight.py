"""Before an offload writes a byte: the source and destinations make sense, each destination is
proven to be its drive (REG-4.2.1) and pinned to the filesystem it is on, and a clear will
follow two independent copies (REG-4.2.6). Exports, seals and destruction reuse these checks."""

from __future__ import annotations

import os
from pathlib import Path

from camdock.adapters.copier import Destination
from camdock.adapters.drives import prove_all
from camdock.core.naming import name_problem
from camdock.errors import ExitCode, OffloadRefused
from camdock.offload.types import OffloadRequest

__all__ = ["check_destination", "independent_copies_or_refuse", "preflight"]


def preflight(req: OffloadRequest) -> tuple[list[Destination], list[str]]:
    """The destinations, pinned to the filesystems they are on now, and warnings; raises
    OffloadRefused (or StorageMissing) before anything is written."""
    for label, value in (
        ("camera id", req.camera_id),
        ("officer name", req.officer_name),
        ("officer badge", req.officer_badge),
    ):
        if not value.strip():
            raise OffloadRefused(f"{label} must not be empty", ExitCode.USAGE)
        if problem := name_problem(value):
            raise OffloadRefused(f"{label} {problem}", ExitCode.USAGE)
    if req.unit and (problem := name_problem(req.unit)):
        raise OffloadRefused(f"unit {problem}", ExitCode.USAGE)
    if not req.destinations:
        raise OffloadRefused("at least one destination (--to) is needed", ExitCode.USAGE)
    source = req.source
    if not source.is_dir():
        raise OffloadRefused(f"source {source} is not a directory (missing?)", ExitCode.NOINPUT)
    if not os.access(source, os.R_OK | os.X_OK):
        raise OffloadRefused(f"source {source} is not readable", ExitCode.NOINPUT)
    src_real = source.resolve()
    prove_all(req.drives)  # raises StorageMissing before anything is written
    dests: list[Destination] = []
    warnings: list[str] = []
    seen: dict[tuple[int, int], Path] = {}
    devices: dict[int, Path] = {}
    for dest in req.destinations:
        check_destination(dest, source, src_real)
        pinned = Destination.pin(dest)
        if pinned.identity in seen:
            raise OffloadRefused(
                f"destination {dest} is the same directory as {seen[pinned.identity]}",
                ExitCode.USAGE,
            )
        seen[pinned.identity] = dest
        if pinned.identity[0] in devices:
            warnings.append(
                f"destinations {devices[pinned.identity[0]]} and {dest} are on one "
                "filesystem: a failure of that disk loses both copies (REG-4.2.6 wants a "
                "second device)"
            )
        devices[pinned.identity[0]] = dest
        dests.append(pinned)
    if req.clear and len(devices) < 2:
        warnings.append(independent_copies_or_refuse(req, len(dests)))
    return dests, warnings


def independent_copies_or_refuse(req: OffloadRequest, destinations: int) -> str:
    """REG-4.1.2 with REG-4.2.6: the camera is cleared only after two verified copies on two
    different filesystems; one disk failing must not take the only copy with it. Returns the
    warning when development allows it anyway."""
    why = "only one destination" if destinations < 2 else "every destination is on one filesystem"
    if not req.allow_one_filesystem:
        raise OffloadRefused(
            f"refusing to clear the camera: {why}. Clearing needs two verified copies on "
            "two different drives (REG-4.2.6); copy without clearing, or give a second "
            "destination on another drive",
            ExitCode.USAGE,
        )
    return f"clearing with {why}: allowed for development only (REG-4.2.6 wants two drives)"


def check_destination(dest: Path, source: Path, src_real: Path) -> None:
    """A destination must be a writable directory, apart from the source."""
    if not dest.is_dir():
        raise OffloadRefused(
            f"destination {dest} is not a directory (missing?)", ExitCode.CANTCREAT
        )
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OffloadRefused(
            f"destination {dest} is not writable (read-only filesystem?)", ExitCode.CANTCREAT
        )
    real = dest.resolve()
    if real == src_real or real.is_relative_to(src_real):
        raise OffloadRefused(f"destination {dest} is inside source {source}", ExitCode.USAGE)
    if src_real.is_relative_to(real):
        raise OffloadRefused(f"source {source} is inside destination {dest}", ExitCode.USAGE)
