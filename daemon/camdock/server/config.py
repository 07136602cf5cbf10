"""The server's own configuration (``/etc/camdock/server.toml``), apart from any station's:
the broker nodes, the queue, the database, the fleet view and its users (scrypt hashes, as the
console's ``[[staff]]``: ``camdock staff hash-password`` makes them)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camdock import passwords
from camdock.errors import ConfigError

__all__ = ["ROLES", "ServerConfig", "User", "load", "parse"]

ROLES = ("supervisor", "auditor")  # the unit supervisor and the auditor (issue 31)


@dataclass(frozen=True)
class User:
    """One person who may log in to the fleet view."""

    id: str
    name: str
    role: str
    password: str  # scrypt$…


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``camdock server`` reads."""

    amqp: tuple[str, ...] = ("amqp://guest:guest@127.0.0.1:5672/",)
    prefix: str = "camdock"
    queue: str = "camdock-server"
    # One transaction per batch: its round trips and its commit are paid once for up to
    # ``batch`` events; ``prefetch`` above ``batch`` lets the next batch arrive while one is
    # written. Consumers take the rows of their batch's stations, so at a shift change (every
    # station at once) they mostly wait for each other: two, not one per core (RESULTS.md).
    consumers: int = 2
    prefetch: int = 4000
    batch: int = 2000
    max_message_bytes: int = 64 * 1024
    gap_grace_seconds: float = 30.0
    dsn: str = "dbname=camdock"
    timezone: str = "Asia/Taipei"
    listen: str = "127.0.0.1:8090"
    secret_file: Path | None = None
    users: tuple[User, ...] = field(default_factory=tuple)


_SERVER_KEYS = {
    "amqp",
    "password_file",
    "prefix",
    "queue",
    "consumers",
    "prefetch",
    "batch",
    "max_message_bytes",
    "gap_grace_seconds",
    "timezone",
}


def parse(doc: dict[str, Any], source: str = "server config") -> ServerConfig:
    """A ServerConfig from a parsed TOML document; every problem listed in one ConfigError."""
    problems: list[str] = []
    for section in set(doc) - {"server", "database", "web", "users"}:
        problems.append(f"unknown section [{section}]")
    s = doc.get("server", {})
    for key in set(s) - _SERVER_KEYS:
        problems.append(f"[server]: unknown key {key!r}")
    amqp = s.get("amqp", list(ServerConfig.amqp))
    if not isinstance(amqp, list) or not amqp or not all(isinstance(u, str) for u in amqp):
        problems.append("[server].amqp: a list of amqp:// URLs, one per broker node")
        amqp = list(ServerConfig.amqp)
    if "password_file" in s:  # the password stays out of the config file
        secret = Path(s["password_file"]).read_text().strip()
        amqp = [
            u.replace("@", f":{secret}@", 1) if ":" not in u.split("//")[1].split("@")[0] else u
            for u in amqp
        ]
    for key in ("consumers", "prefetch", "batch", "max_message_bytes"):
        if not isinstance(s.get(key, 1), int) or s.get(key, 1) < 1:
            problems.append(f"[server].{key}: a positive integer")
    db = doc.get("database", {})
    for key in set(db) - {"dsn"}:
        problems.append(f"[database]: unknown key {key!r}")
    web = doc.get("web", {})
    for key in set(web) - {"listen", "secret_file"}:
        problems.append(f"[web]: unknown key {key!r}")
    users: list[User] = []
    for n, u in enumerate(doc.get("users", []), start=1):
        missing = {"id", "name", "role", "password"} - set(u)
        if missing:
            problems.append(f"[[users]] #{n}: missing {', '.join(sorted(missing))}")
            continue
        if u["role"] not in ROLES:
            problems.append(f"[[users]] {u['id']}: role must be one of {', '.join(ROLES)}")
        if why := passwords.problem(u["password"]):
            problems.append(f"[[users]] {u['id']}: password: {why}")
        users.append(User(str(u["id"]), str(u["name"]), str(u["role"]), str(u["password"])))
    if problems:
        raise ConfigError(source, sorted(problems))
    d = ServerConfig()
    return ServerConfig(
        amqp=tuple(amqp),
        prefix=s.get("prefix", d.prefix),
        queue=s.get("queue", d.queue),
        consumers=s.get("consumers", d.consumers),
        prefetch=s.get("prefetch", d.prefetch),
        batch=s.get("batch", d.batch),
        max_message_bytes=s.get("max_message_bytes", d.max_message_bytes),
        gap_grace_seconds=float(s.get("gap_grace_seconds", d.gap_grace_seconds)),
        timezone=s.get("timezone", d.timezone),
        dsn=db.get("dsn", d.dsn),
        listen=web.get("listen", d.listen),
        secret_file=Path(web["secret_file"]) if "secret_file" in web else None,
        users=tuple(users),
    )


def load(path: Path) -> ServerConfig:
    """Read and check the server's config file."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), [str(exc.strerror)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [str(exc)]) from None
    return parse(doc, str(path))
