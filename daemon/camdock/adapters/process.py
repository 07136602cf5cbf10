"""Who a process is, in a way that survives pid reuse: the boot, the pid and the moment the
process started (field 22 of /proc/<pid>/stat, in clock ticks since boot). A journal entry
stamped with it can tell a live owner from a dead one (a crash, SIGKILL, a reboot)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["identity", "running"]

_PROC = Path("/proc")


@functools.cache
def boot_id() -> str:
    """This boot's random id: a pid from an earlier boot names nobody now."""
    return (_PROC / "sys/kernel/random/boot_id").read_text().strip()


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time, or None when there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")": the fields
    # after it start past the last ")".
    rest = text[text.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])  # fields 3 (state) and 22 (starttime)


def identity() -> tuple[str, int, int]:
    """This process: (boot id, pid, start time in ticks since boot)."""
    pid = os.getpid()  # not cached: a forked child is someone else
    found = _stat(pid)
    assert found is not None  # we are running
    return boot_id(), pid, found[1]


def running(boot: str | None, pid: int | None, start: int | None) -> bool:
    """Whether the process so identified is still running. Unknown (None) parts, another boot,
    no such pid, a pid that now names a later process, or a zombie: not running."""
    if boot is None or pid is None or start is None or boot != boot_id():
        return False
    found = _stat(pid)
    return found is not None and found[1] == start and found[0] not in ("Z", "X")
