"""PostgreSQL and a RabbitMQ cluster on loopback, started and stopped by the tests, the fleet
benchmark and ``make demo-fleet`` (never by a production server: there Debian's units and the
Ansible role run them).

Everything lives in a temporary folder and listens on 127.0.0.1 only: PostgreSQL is
``initdb``-ed there and run as an unprivileged user (``postgres`` when we are root); each
RabbitMQ node has its own node name, AMQP/MQTT/distribution ports, data and log folders, the
cluster its own ``.erlang.cookie`` (0400, in a temporary HOME) and its own ``epmd`` on a port of
its own, bound to 127.0.0.1 with the Erlang distribution. The nodes form the cluster by
themselves from the config (``classic_config`` peer discovery). ``stop`` ends every process
that was started, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PG_BIN",
    "RABBIT_BIN",
    "Postgres",
    "RabbitCluster",
    "RabbitNode",
    "free_port",
    "missing",
]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def missing() -> str | None:
    """Why the engines cannot run here, or None."""
    if not (PG_BIN / "initdb").exists():
        return "PostgreSQL 15 is not installed (apt: postgresql)"
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "RabbitMQ is not installed (apt: rabbitmq-server)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no unprivileged 'postgres' user to run PostgreSQL as"
    return None


def free_port() -> int:
    """A TCP port nobody listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _await_group_gone(pgid: int, timeout: float = 15) -> None:
    """Until no process of group ``pgid`` is left (beam.smp's helpers die after the script
    we waited for): a test run leaves nothing running, even for a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _await_gone(pid: int, timeout: float = 15) -> None:
    """Until process ``pid`` (not our child: pg_ctl's postmaster) no longer exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass  # it exists, as another user (postgres)
        time.sleep(0.1)


@dataclass
class Postgres:
    """A PostgreSQL 15 cluster in a temporary folder, on 127.0.0.1:``port``."""

    port: int = field(default_factory=free_port)
    durable: bool = False  # fsync off for tests; the benchmark keeps it on
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="camdock-pg-")))

    @property
    def dsn(self) -> str:
        """How the server connects (trust on loopback: a test's throwaway database)."""
        return f"host=127.0.0.1 port={self.port} user=camdock dbname=camdock"

    def _pg(self, tool: str, *args: str, check: bool = True) -> None:
        """Run one of PostgreSQL's programs: as ``postgres`` when we are root, in an
        environment of its own (runuser would hand it ours: a test's LD_PRELOAD and the
        root-only shared memory of its libfaketime, which a process of another user cannot
        open and dies of); a failure says what the program printed."""
        argv = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            raise RuntimeError(f"{tool} exited with {done.returncode}: {said}")

    def start(self) -> None:
        """initdb, start, create the database; returns when it accepts connections."""
        data = str(self.base / "data")
        if os.geteuid() == 0:
            os.chmod(self.base, 0o755)  # noqa: S103 - postgres must reach its data folder
            shutil.chown(self.base, "postgres", "postgres")
        self._pg("initdb", "-D", data, "-U", "camdock", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base}"
        opts += " -c shared_buffers=64MB -c max_connections=60"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = str(self.base / "log")
        self._pg("pg_ctl", "-D", data, "-o", opts, "-l", log, "-w", "-t", "60", "start")
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "camdock", "camdock")

    def pid(self) -> int | None:
        """The postmaster's pid, while it runs."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.base / "data" / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        """Stop (fast) and remove the folder. Safe to call twice."""
        pid = self.pid()
        if (self.base / "data" / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop",
                     check=False)  # fmt: skip
        if pid is not None:
            _await_gone(pid)  # until init has reaped it: nothing left, even for a moment
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class RabbitNode:
    """One node of the cluster."""

    name: str  # e.g. "camdock-a@localhost"
    amqp_port: int
    mqtt_port: int
    dist_port: int
    base: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        """The server's URL for this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def alive(self) -> bool:
        """Whether its process is running."""
        return self.proc is not None and self.proc.poll() is None


class RabbitCluster:
    """``size`` RabbitMQ nodes on loopback, one cluster, the MQTT plugin on each."""

    def __init__(self, size: int = 3, base: Path | None = None) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="camdock-rmq-"))
        self.home = self.base / "home"
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        tag = os.urandom(3).hex()
        self.nodes = [
            RabbitNode(
                f"camdock{tag}{chr(97 + i)}@localhost",
                free_port(),
                free_port(),
                free_port(),
                self.base / chr(97 + i),
            )
            for i in range(size)
        ]

    def env(self, node: RabbitNode) -> dict[str, str]:
        """The environment one node (or a CLI tool aimed at it) runs in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_MNESIA_BASE=str(node.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(node.base / "log"),
            RABBITMQ_CONFIG_FILE=str(node.base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(node.base / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(node.base / "pid"),
            # Three nodes share this machine's cores (with the server, PostgreSQL and the
            # stations): one scheduler and one dirty CPU scheduler each (Erlang's default is
            # one per core per node, six threads passing work on two cores), none busy-waiting.
            # At a 200-station shift change the brokers' CPU per event fell from ~800 to
            # ~470-590 us (bench/RESULTS.md). A production node has its host to itself and
            # keeps Erlang's defaults (ansible/roles/camdock-server).
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
            " +S 1:1 +SDcpu 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        return env

    def _configure(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)
        (self.base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {n.name}\n"
            for i, n in enumerate(self.nodes, start=1)
        )
        for node in self.nodes:
            node.base.mkdir(parents=True, exist_ok=True)
            (node.base / "advanced.config").write_text("[].\n")
            (node.base / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}\n"
                f"mqtt.listeners.tcp.1 = 127.0.0.1:{node.mqtt_port}\n"
                "loopback_users = none\n"
                "cluster_formation.peer_discovery_backend = classic_config\n" + peers +
                # A test machine's disk is shared; production keeps RabbitMQ's defaults.
                "disk_free_limit.absolute = 50MB\n"
                "vm_memory_high_watermark.relative = 0.2\n"
                "log.console = false\nlog.file.level = warning\n"
            )

    def start(self, timeout: float = 180.0) -> None:
        """Start the first node, then the others at once; returns when the cluster has all of
        them and each accepts an MQTT session. Started all at once, the nodes' MQTT plugins
        could each begin a client-id tracker (a Raft cluster of its own) and one node then
        answered every CONNECT "server unavailable" for minutes; the others join the first's."""
        self._configure()
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(0.2)
        deadline = time.monotonic() + timeout
        first, *others = self.nodes
        self.start_node(first)
        _wait_port(first.amqp_port, deadline, first.proc)
        self.await_mqtt(first, deadline)
        for node in others:
            self.start_node(node)
        for node in others:
            _wait_port(node.amqp_port, deadline, node.proc)
            _wait_port(node.mqtt_port, deadline, node.proc)
        self.await_members(len(self.nodes), deadline)
        for node in others:
            self.await_mqtt(node, deadline)

    def await_mqtt(self, node: RabbitNode, deadline: float) -> None:
        """Until ``node`` accepts an MQTT session. Its listener opens before the plugin's
        client-id tracker has a leader; until then a CONNECT is answered "server
        unavailable", which failed a test's first station on a busy machine."""
        connect = b"\x10\x13\x00\x04MQTT\x04\x02\x00\x05\x00\x07camdock"
        answer = b""
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", node.mqtt_port), timeout=10) as s,
            ):
                s.sendall(connect)
                answer = s.recv(4)
                if answer[:1] == b"\x20" and answer[3:4] == b"\x00":
                    s.sendall(b"\xe0\x00")  # DISCONNECT
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{node.name} accepts no MQTT session (last answer {answer!r})")

    def start_node(self, node: RabbitNode) -> None:
        """Start (or restart) one node."""
        log = open(node.base / "stdout.log", "ab")  # noqa: SIM115 - the node's own file
        node.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl against ``node``; its output."""
        out = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return out.stdout

    def await_members(self, count: int, deadline: float) -> None:
        """Until ``count`` nodes run in one cluster."""
        alive = next(n for n in self.nodes if n.alive)
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.ctl(alive, "eval", "length(rabbit_nodes:all_running()).", timeout=30)
                if last.strip() == str(count):
                    return
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {count} running nodes: {last}")

    def kill(self, node: RabbitNode) -> None:
        """SIGKILL the node's whole process group: a node that dies, no goodbye."""
        if node.proc is not None and node.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(30)
            _await_group_gone(node.proc.pid)

    def stop(self) -> None:
        """End every node and epmd, remove the folder. Safe to call twice."""
        for node in self.nodes:
            self.kill(node)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)
