"""The control socket (issue 17; ARCHITECTURE, "Who may write"): the console's only way to
read the catalog or act. The kernel says who is connecting (SO_PEERCRED), the daemon checks
the password, the session and the role (REG-4.1.1, REG-5.1), and records what it refuses in
the custody log (REG-7.1); a copy goes only onto export media (REG-5.3). Real Unix sockets, a
real catalog, another user (``setpriv``) for the peer check."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from camdock import passwords
from camdock.adapters import control as control_socket
from camdock.adapters.control import MAX_REQUEST, READ_TIMEOUT, Server, call
from camdock.config import Config, load
from camdock.station.control import LOCKOUT_AFTER, SOCKET, Control
from conftest import needs_root, offload, write_recording
from staffotp import code, enrol
from stationcfg import write_config
from test_access import STAFF

PASSWORD = "a long console password"  # noqa: S105 - the test's own


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Config, Path]]:
    hashed = passwords.hash_password(PASSWORD)
    cfg = load(write_config(tmp_path, STAFF.replace('roles = ["', f'password_hash = "{hashed}"\n'
                                                                  'roles = ["')))  # fmt: skip
    cam = tmp_path / "cam"
    write_recording(cam / "DCIM/100MEDIA/20261128_091000_0001.MP4", 8192, 3)
    assert offload(cam, [cfg.footage, cfg.backup], cfg.catalog).ok
    path = cfg.run_dir / SOCKET
    enrol(cfg)
    server = Server(path, Control(cfg).handle, frozenset({0, os.geteuid()}))
    server.start()
    try:
        yield cfg, path
    finally:
        server.close()


def ask(path: Path, op: str, token: str | None = None, **args: Any) -> dict[str, Any]:
    doc, fd = call(path, {"op": op, "token": token, "args": args})
    assert fd is None
    return doc


def login(path: Path, staff: str, password: str = PASSWORD) -> str:
    doc = ask(path, "login", staff=staff, password=password)
    if doc.get("kind") == "otp_required":  # an approver, supervisor or auditor (issue 27)
        doc = ask(path, "login", staff=staff, password=password, otp=code(path, staff))
    assert doc["ok"], doc
    return str(doc["result"]["token"])


def refusals(cfg: Config) -> list[dict[str, Any]]:
    con = sqlite3.connect(cfg.catalog)
    try:
        found = con.execute("SELECT actor, details FROM custody_log WHERE action = 'refused'")
        return [{"actor": a, **json.loads(d)} for a, d in found]
    finally:
        con.close()


def test_every_operation_needs_a_session_and_a_role(daemon: tuple[Config, Path]) -> None:
    cfg, path = daemon
    assert ask(path, "catalog.search")["status"] == 401  # no token
    assert ask(path, "catalog.search", token="forged")["status"] == 401  # noqa: S106
    officer = login(path, "D1")
    refused = ask(path, "catalog.search", officer)
    assert refused["status"] == 403 and not refused["ok"]
    assert {"actor": "周偵查員 (D1)", "attempted": "catalog.search"}.items() <= refusals(cfg)[
        -1
    ].items()
    custodian = login(path, "C1")
    found = ask(path, "catalog.search", custodian, officer="A12345")
    assert found["ok"] and [r["officer_badge"] for r in found["result"]] == ["A12345"]
    assert ask(path, "no.such.op", custodian)["status"] == 404
    assert ask(path, "recording.get", custodian, id="x")["status"] == 400
    assert ask(path, "recording.get", custodian, id="999")["status"] == 404
    # The daemon writes a verified copy as root: only onto export media, wherever it is asked.
    for target in ("/etc", "/media/../etc", "relative"):
        refused = ask(path, "request.copy", custodian, number="2026-0001", to=target)
        assert refused["status"] == 400 and "export media" in refused["error"], refused
    ask(path, "logout", custodian)
    assert ask(path, "catalog.search", custodian)["status"] == 401  # the session has ended


def test_lockout_after_repeated_failures_is_recorded(daemon: tuple[Config, Path]) -> None:
    cfg, path = daemon
    for _ in range(LOCKOUT_AFTER):
        assert ask(path, "login", staff="C1", password="wrong")["status"] == 401  # noqa: S106
    locked = ask(path, "login", staff="C1", password=PASSWORD)  # even the right one, for now
    assert locked["status"] == 429
    assert refusals(cfg)[-1]["attempted"] == "login"
    assert login(path, "S1")  # others are not locked out


def test_the_consoles_user_speaks_only_as_the_console(daemon: tuple[Config, Path]) -> None:
    """Review of issue 27: a custody entry's channel (console or cli) is not the console
    process's to choose. A request from the console's user (its uid, as the kernel says) that
    claims the CLI channel is refused; the same request as the console is served."""
    cfg, _ = daemon
    control = Control(cfg)
    control.console_uid = os.geteuid() + 4242  # the console's user on this station
    login = {"op": "login", "token": None, "args": {"staff": "C1", "password": PASSWORD}}
    claimed, _ = control.handle({**login, "channel": "cli"}, control.console_uid)
    assert claimed["status"] == 400 and "only as the console" in claimed["error"]
    honest, _ = control.handle({**login, "channel": "console"}, control.console_uid)
    assert honest["ok"] is True
    from_cli, _ = control.handle({**login, "channel": "cli"}, os.geteuid())  # another user
    assert from_cli["ok"] is True


def test_malformed_requests_are_answered_not_fatal(daemon: tuple[Config, Path]) -> None:
    _, path = daemon
    for raw in (b"not json\n", b"[1, 2]\n", b"\xff\xfe\n", b"x" * (MAX_REQUEST + 10) + b"\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            # the daemon may stop reading an over-long request before it is all sent
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(raw)
            reply = json.loads(s.makefile("rb").readline())
        assert reply["ok"] is False and reply["status"] == 400, raw[:20]
    assert login(path, "C1")  # and it still serves


# 'nobody' runs without the shifted runs' libfaketime (make test-shifted): its shared memory
# is root's, and a process of another user that cannot open it dies (time is not at stake here).
NOBODY_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME_SHARED")}


def _as_nobody(script: str, path: Path) -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
            script, str(path)]  # fmt: skip


@needs_root
def test_only_the_consoles_user_may_connect(daemon: tuple[Config, Path], tmp_path: Path) -> None:
    """The socket is born 0660 (root and the console's group); and were its mode opened by
    mistake, the kernel's peer credentials still keep any other user out."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    _, path = daemon
    assert path.stat().st_mode & 0o777 == 0o660
    for parent in (path.parent, *path.parent.parents):
        parent.chmod(parent.stat().st_mode | 0o005)  # let 'nobody' reach the socket file
    script = ("import json, socket, sys, time\n"
              "s = socket.socket(socket.AF_UNIX)\n"
              "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n"
              "    print('EACCES'); raise SystemExit\n"
              "time.sleep(0.5)\n"  # a slow peer (a loaded machine) still gets the refusal
              "s.sendall(b'{\"op\": \"login\", \"args\": {}}\\n')\n"
              "print(s.makefile().readline())\n")  # fmt: skip
    nobody = _as_nobody(script, path)
    done = subprocess.run(nobody, capture_output=True, text=True, check=False, env=NOBODY_ENV)
    assert done.stdout.strip() == "EACCES", done.stderr
    path.chmod(0o666)
    done = subprocess.run(nobody, capture_output=True, text=True, check=False, env=NOBODY_ENV)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["status"] == 403 and "uid 65534 may not use the control socket" in reply["error"]


@needs_root
def test_refused_peers_that_say_nothing_hold_no_worker(
    daemon: tuple[Config, Path], tmp_path: Path
) -> None:
    """A uid that may not ask (the socket's mode opened by mistake) opens more silent
    connections than there are workers and keeps them open: the console is still answered
    while they are all open, and each silent peer has its refusal waiting for it."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    _, path = daemon
    for parent in (path.parent, *path.parent.parents):
        parent.chmod(parent.stat().st_mode | 0o005)
    path.chmod(0o666)
    script = ("import socket, sys, time\n"
              "socks = [socket.socket(socket.AF_UNIX) for _ in range(12)]\n"
              "for s in socks:\n    s.connect(sys.argv[1])\n"
              "print('connected', flush=True)\n"
              "sys.stdin.readline()\n"  # silent until the test has been answered
              "print(sum(b'403' in s.recv(4096) for s in socks), flush=True)\n")  # fmt: skip
    nobody = subprocess.Popen(
        _as_nobody(script, path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=NOBODY_ENV,
    )  # fmt: skip
    try:
        assert nobody.stdout is not None and nobody.stdin is not None
        assert nobody.stdout.readline().strip() == "connected"
        # answered well before a worker held by a silent peer would be free (READ_TIMEOUT)
        request = {"op": "login", "token": None, "args": {"staff": "C1", "password": "wrong"}}
        doc, _ = call(path, request, timeout=READ_TIMEOUT / 2)
        assert doc["status"] == 401
        assert nobody.poll() is None  # every silent peer was still connected then
        out, _ = nobody.communicate("go\n", timeout=60)
        assert out.strip() == "12"
    finally:
        if nobody.poll() is None:
            nobody.kill()
            nobody.wait()


# The socket under load (issue 26): a queue, not a refusal; deadlines, so a slow peer holds
# nothing but its own connection; bounded requests, answered with what is wrong.


@contextlib.contextmanager
def serving(path: Path, handle: Any, slow: frozenset[str] = frozenset()) -> Iterator[Server]:
    server = Server(path, handle, frozenset({os.geteuid()}), slow=slow)
    server.start()
    try:
        yield server
    finally:
        server.close()


# 300 clients asking at once, from a process of their own: a console's requests come from other
# processes, and 300 client threads in the server's process would make the test measure how
# long the selector thread waits for the GIL behind them.
CLIENTS = (
    "import sys\nfrom concurrent.futures import ThreadPoolExecutor\nfrom pathlib import Path\n"
    "from camdock.adapters.control import call\n"
    "ask = lambda _: call(Path(sys.argv[1]), {'op': 'catalog.search', 'token': None, "
    "'args': {}}, timeout=None)[0]['status']\n"
    "with ThreadPoolExecutor(300) as pool:\n    got = list(pool.map(ask, range(300)))\n"
    "print(sorted(set(got)), len(got))\n"
)


def ask_three_hundred(server: Server) -> None:
    """300 clients at once; each must be answered (401: no session), however long it takes."""
    done = subprocess.run([sys.executable, "-c", CLIENTS, str(server.path)],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[401]", "300"], done.stdout


def test_three_hundred_clients_at_once_are_all_answered(
    daemon: tuple[Config, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More peers than the accept queue holds (shrunk here to 4, and 8 served at once): the
    rest wait and retry (EAGAIN), none is turned away."""
    cfg, _ = daemon
    server = Server(cfg.run_dir / "busy.sock", Control(cfg).handle, frozenset({os.geteuid()}))
    monkeypatch.setattr(control_socket, "BACKLOG", 4)
    monkeypatch.setattr(control_socket, "MAX_OPEN", 8)
    server.start()
    try:
        ask_three_hundred(server)
    finally:
        server.close()


def test_slow_and_silent_peers_stall_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty peers that trickle a request byte by byte and one that never reads its large
    reply: another peer is answered at once, and each slow one is dropped at its deadline."""
    monkeypatch.setattr(control_socket, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(control_socket, "WRITE_TIMEOUT", 1.0)
    big = {"ok": True, "result": "x" * (8 << 20)}  # far more than a socket buffer holds

    def handle(request: dict[str, Any], uid: int) -> tuple[dict[str, Any], None]:
        return (big if request["op"] == "big" else {"ok": True, "result": "quick"}), None

    with serving(tmp_path / "s.sock", handle) as server, contextlib.ExitStack() as stack:
        trickling = [stack.enter_context(socket.socket(socket.AF_UNIX)) for _ in range(20)]
        for s in trickling:
            s.connect(str(server.path))
            s.sendall(b'{"op": ')
        hoarder = stack.enter_context(socket.socket(socket.AF_UNIX))
        hoarder.connect(str(server.path))
        hoarder.sendall(b'{"op": "big"}\n')  # and never reads
        for _ in range(WORKERS_AND_THEN_SOME):
            assert call(server.path, {"op": "quick"}, timeout=5)[0]["result"] == "quick"
        for s in trickling:  # the read deadline has closed each of them
            s.settimeout(10)
            assert s.recv(100) == b""
        hoarder.settimeout(10)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while hoarder.recv(1 << 20):  # what was sent before the write deadline, then EOF
                pass
            raise BrokenPipeError  # the connection ended before the whole reply: dropped


WORKERS_AND_THEN_SOME = control_socket.WORKERS * 3


def test_requests_are_bounded_before_they_are_parsed(tmp_path: Path) -> None:
    """A request too long or nested too deep (100,000 brackets) is answered 400, not parsed,
    and the socket still serves."""

    def handle(request: dict[str, Any], uid: int) -> tuple[dict[str, Any], None]:
        return {"ok": True, "result": request["op"]}, None

    with serving(tmp_path / "s.sock", handle) as server:
        cases = {
            b"[" * 100_000 + b"\n": "at most",
            b'{"op": "x", "args": ' + b"[" * 1000 + b"]" * 1000 + b"}\n": "nested",
            b'{"op": "x", "args": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}\n': None,
        }
        for raw, error in cases.items():
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(server.path))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    s.sendall(raw)
                reply = json.loads(s.makefile("rb").readline())
            if error is None:  # brackets inside a string are text, not nesting
                assert reply == {"ok": True, "result": "x"}
            else:
                assert reply["status"] == 400 and error in reply["error"], reply
        assert call(server.path, {"op": "still"})[0]["result"] == "still"


def test_a_long_operation_never_delays_a_quick_one(tmp_path: Path) -> None:
    """Exports and attributions have workers of their own: with every one of them busy, and
    more waiting, a login is still answered; the waiting ones are answered when a worker frees."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def handle(request: dict[str, Any], uid: int) -> tuple[dict[str, Any], None]:
        if request["op"] == "export":
            started.release()
            release.wait()
        return {"ok": True, "result": request["op"]}, None

    waiting = control_socket.SLOW_WORKERS + 3
    slow = frozenset({"export"})
    with serving(tmp_path / "s.sock", handle, slow) as server, ThreadPoolExecutor(waiting) as pool:
        exports = [pool.submit(call, server.path, {"op": "export"}, None) for _ in range(waiting)]
        for _ in range(control_socket.SLOW_WORKERS):
            assert started.acquire(timeout=30)
        assert call(server.path, {"op": "login"}, timeout=30)[0]["result"] == "login"
        assert not any(f.done() for f in exports)
        release.set()
        assert [f.result(timeout=60)[0]["result"] for f in exports] == ["export"] * waiting


def test_any_json_object_is_answered_and_the_socket_lives_on(tmp_path: Path) -> None:
    """An op that is a list, an object, a number or null (a hostile or broken console) is
    answered by the handler like any other request; the socket keeps serving."""

    def handle(request: dict[str, Any], uid: int) -> tuple[dict[str, Any], None]:
        if not isinstance(request.get("op"), str):
            return {"ok": False, "status": 400, "error": "op: a text is needed"}, None
        return {"ok": True, "result": request["op"]}, None

    with serving(tmp_path / "s.sock", handle, frozenset({"slow"})) as server:
        for op in ([], {}, 1, None, [["x"]]):
            assert call(server.path, {"op": op})[0]["status"] == 400
        assert server.serving()
        assert call(server.path, {"op": "still"})[0]["result"] == "still"


BURN = "import os\nwhile True: os.urandom(64)"


def test_three_hundred_clients_are_answered_by_a_low_priority_selector_on_a_busy_cpu(
    daemon: tuple[Config, Path],
) -> None:
    """Issue 26 (item 6): the socket's selector thread runs at nice 10, below the copier, so
    a flood of console requests never slows the offload (bench/control_bench), and not at
    SCHED_IDLE, which stalls the whole daemon when preempted holding the GIL (bench/
    priority_bench). 300 clients at once, from a process of their own, with every core kept
    busy at normal priority, are each answered (not timed: the answers take longer, none is
    lost or refused)."""
    cfg, _ = daemon
    server = Server(cfg.run_dir / "idle.sock", Control(cfg).handle, frozenset({os.geteuid()}))
    server.start()
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 2)]
    try:
        assert server._thread is not None and server._thread.native_id is not None
        tid = server._thread.native_id
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, tid) == control_socket.NICE
        ask_three_hundred(server)
    finally:
        for b in burners:
            b.kill()
            b.wait()
        server.close()
