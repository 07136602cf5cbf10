"""The 7-Zip program behind adapters/archive.py: Debian's ``7zz`` (package 7zip) or ``7z``
(p7zip-full), driven with an argument list, never a shell.

Why the program and not py7zr: on the same files it seals at the speed of ``7z a`` + ``7z t``
(bench/seal_bench.py measured both; py7zr ran at 0.11 of the drives' speed, the program near
1.0), in a few MiB of memory. The archives are the same 7z format either way (AES-256, headers
encrypted, members stored), so days sealed by py7zr before the change read back unchanged.

- The password goes to the program's standard input, where 7-Zip asks for it: never in its
  argument list (which ``ps`` shows to every user) or its environment.
- Member names are those the catalog gives: the program runs in the drive's root, where a
  day's copies lie under those names; where one does not (never in practice), it archives hard
  links under the names, made in a folder beside the archive's temp name on the same drive (no
  byte copied) and removed afterwards. ``-spd`` turns wildcards off and ``--`` ends the
  switches, so a name that starts with ``-`` or holds ``*`` is a name.
- Reading back, the archive is hashed as it is on disk while the program decrypts every member
  to our pipe, split by the sizes its header lists and hashed; seal.py compares each with the
  catalog. A plain copy damaged before sealing therefore fails the read-back, never passes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from camdock.adapters import fsio
from camdock.adapters.archive import ArchiveError, ArchivePaused, Member, ReadBack

PROGRAMS = ("7zz", "7z")  # Debian's 7zip, then p7zip-full
BLOCK = 1 << 20  # bytes read from the program's output at once
POLL = 0.2  # seconds between looks at the pause flag while the program runs
# 7-Zip reads the password from a UTF-8 terminal as UTF-16, the way py7zr and 7-Zip on Windows
# do; any other locale would make the same password a different key.
ENV = {"LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}
SWITCHES = ("-bd", "-spd", "-y")  # no progress indicator on stderr; no wildcards; no questions


def program() -> str:
    """The 7-Zip program's path; ArchiveError naming the packages when neither is installed."""
    for name in PROGRAMS:
        if found := shutil.which(name, path=ENV["PATH"]):
            return found
    raise ArchiveError("7-Zip is not installed: apt install 7zip (or p7zip-full)")


class _Run:
    """One run of the program: the password written to its input, its errors kept, stopped
    (killed) when ``pause()`` says so or when the caller leaves early."""

    def __init__(self, args: list[str], password: str, *, cwd: Path | None = None,
                 pause: Callable[[], bool] | None = None) -> None:  # fmt: skip
        # The program dies with us: a killed seal leaves no 7-Zip writing on (util-linux).
        guard = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        self.proc = subprocess.Popen(  # an argument list, no shell
            [*guard, program(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=ENV,
        )
        self.pause = pause
        self.errors = b""
        self._drain = threading.Thread(target=self._read_errors, daemon=True)
        self._drain.start()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(password.encode() + b"\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the program ended before asking (a missing archive): its errors say why

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.errors = self.proc.stderr.read()[-4096:]

    def check_pause(self) -> None:
        if self.pause is not None and self.pause():
            self.kill()
            raise ArchivePaused("paused: a bay is offloading")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self, what: Path) -> None:
        """Wait for the end; a failure is an ArchiveError with 7-Zip's own words."""
        while True:
            try:
                code = self.proc.wait(POLL)
                break
            except subprocess.TimeoutExpired:
                self.check_pause()
        self._drain.join()
        if code != 0:
            raise ArchiveError(f"{what}: 7-Zip exit {code}: {self.said()}")

    def said(self) -> str:
        lines = [ln.strip() for ln in self.errors.decode("utf-8", "replace").splitlines()]
        text = "; ".join(ln for ln in lines if ln and not ln.startswith("Enter password"))
        if "Wrong password" in text or "Cannot open encrypted archive" in text:
            text += " (wrong password, or a damaged archive)"
        return text or "no message"


@contextmanager
def _running(args: list[str], password: str, *, cwd: Path | None = None,
             pause: Callable[[], bool] | None = None) -> Iterator[_Run]:  # fmt: skip
    run = _Run(args, password, cwd=cwd, pause=pause)
    try:
        yield run
    finally:
        run.kill()
        for stream in (run.proc.stdout, run.proc.stderr):
            if stream is not None:
                stream.close()


def _safe_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts):
        raise ArchiveError(f"member name {name!r} is not a relative path")
    return rel


def _check_plain(m: Member) -> None:
    """Only regular files of the catalog's size are archived; the read-back checks their bytes."""
    st = os.lstat(m.source)
    if not stat.S_ISREG(st.st_mode) or st.st_size != m.size:
        raise ArchiveError(f"{m.source}: not a regular file of {m.size} bytes: not sealed")


def _common_root(members: list[Member]) -> Path | None:
    """The folder every member's plain copy lies under by its member name (the usual case: a
    day's copies are filed under the names they are sealed as), or None."""
    roots = set()
    for m in members:
        parts = _safe_name(m.name).parts
        if m.source.parts[-len(parts) :] != parts:
            return None
        roots.add(Path(*m.source.parts[: -len(parts)]))
    return roots.pop() if len(roots) == 1 else None


def _stage(folder: Path, members: list[Member]) -> None:
    """Hard links to the plain copies under their member names (same drive; nothing copied)."""
    for m in members:
        _check_plain(m)
        link = folder.joinpath(*_safe_name(m.name).parts)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(m.source, link, follow_symlinks=False)


def staging(path: Path) -> Path:
    """The folder of hard links beside the archive's temp name ``path`` while it is written."""
    return path.parent / f".{path.name}.names"


def discard(path: Path) -> None:
    """Remove an archive's temp name and its staging folder (what a killed seal leaves)."""
    fsio.unlink_quietly(path)
    shutil.rmtree(staging(path), ignore_errors=True)


def write(
    path: Path,
    members: list[Member],
    password: str,
    progress: Callable[[int], None] | None = None,
    pause: Callable[[], bool] | None = None,
) -> None:
    """Write the archive at ``path`` (a new temp name) and fsync it. Raises ArchiveError when a
    plain copy is not a regular file of the catalog's size (its bytes are checked by
    ``read_back``), ArchivePaused as soon as ``pause()`` says so."""
    stage = staging(path)
    try:
        fsio.unlink_quietly(path)  # 7-Zip would add to an archive that is there
        shutil.rmtree(stage, ignore_errors=True)
        names = [str(_safe_name(m.name)) for m in members]
        cwd = _common_root(members)
        if cwd is None:  # some copy is filed under another name than its member's: link them
            stage.mkdir(mode=0o700)
            _stage(stage, members)
            cwd = stage
        else:
            for m in members:
                _check_plain(m)
        args = ["a", "-t7z", "-mx=0", "-mhe=on", "-p", *SWITCHES, "-bso0", "-bsp0", "--",
                str(path), *names]  # fmt: skip
        with _running(args, password, cwd=cwd, pause=pause) as run:
            run.finish(path)
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if progress is not None:
        progress(sum(m.size for m in members))
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_ENTRY = re.compile(r"^(Path|Size|Folder) = (.*)$")


def listing(path: Path, password: str) -> list[tuple[str, int]]:
    """The archive's members in their order: (name, size)."""
    with _running(["l", "-slt", "-ba", *SWITCHES, "--", str(path)], password) as run:
        assert run.proc.stdout is not None
        out = run.proc.stdout.read()
        run.finish(path)
    found: list[tuple[str, int]] = []
    entry: dict[str, str] = {}
    for line in [*out.decode("utf-8", "surrogateescape").splitlines(), ""]:
        if m := _ENTRY.match(line.strip()):
            entry[m.group(1)] = m.group(2)
        elif not line.strip() and "Path" in entry:
            if entry.get("Folder") != "+":
                found.append((entry["Path"], int(entry.get("Size") or 0)))
            entry = {}
    return found


def _hash_file(path: Path, into: list[tuple[str, int]]) -> None:
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, BLOCK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    into.append((digest.hexdigest(), size))


def _split(run: _Run, sizes: list[tuple[str, int]], path: Path) -> dict[str, tuple[str, int]]:
    """Hash the program's output member by member, by the sizes the header lists."""
    assert run.proc.stdout is not None
    found: dict[str, tuple[str, int]] = {}
    for name, size in sizes:
        digest, left = hashlib.sha256(), size
        while left:
            run.check_pause()
            chunk = run.proc.stdout.read(min(BLOCK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        found[name] = (digest.hexdigest(), size - left)
    if run.proc.stdout.read(1):
        raise ArchiveError(f"{path}: more bytes than its header lists")
    return found


def read_back(path: Path, password: str, pause: Callable[[], bool] | None = None) -> ReadBack:
    """The archive as it is on disk (fsynced, dropped from the page cache first): its hash,
    and every member decrypted and hashed. A wrong password, a damaged archive or a bad CRC is
    an ArchiveError; ``pause()`` true stops it (ArchivePaused)."""
    try:
        fsio.evict(path)
        sizes = listing(path, password)
        whole: list[tuple[str, int]] = []
        hasher = threading.Thread(target=_hash_file, args=(path, whole), daemon=True)
        hasher.start()  # beside the program's own read: the disk is read about once
        with _running(["x", "-so", *SWITCHES, "--", str(path)], password, pause=pause) as run:
            found = _split(run, sizes, path)
            run.finish(path)
        hasher.join()
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
    if not whole:
        raise ArchiveError(f"{path} could not be read to hash it")
    return ReadBack(whole[0][0], whole[0][1], found)


def extract(path: Path, password: str, targets: dict[str, Member]) -> None:
    """Extract the members named in ``targets`` to each one's ``source`` (new files) and check
    each against its SHA-256 and size: footage read back out of a seal (a plain copy removed
    after sealing, needed again)."""
    for name, m in targets.items():
        digest, count = hashlib.sha256(), 0
        try:
            fd = os.open(m.source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o640)  # fmt: skip
            try:
                args = ["x", "-so", *SWITCHES, "--", str(path), str(_safe_name(name))]
                with _running(args, password) as run:
                    assert run.proc.stdout is not None
                    while chunk := run.proc.stdout.read(BLOCK):
                        fsio.write_all(fd, memoryview(chunk))
                        digest.update(chunk)
                        count += len(chunk)
                    run.finish(path)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ArchiveError(f"{path}: {exc.strerror or exc}") from exc
        if (digest.hexdigest(), count) != (m.sha256, m.size):
            raise ArchiveError(f"{path}: member {name} reads back as {digest.hexdigest()} "
                               f"({count} bytes), not {m.sha256} ({m.size})")  # fmt: skip
