"""The station's chain key: each custody entry also carries an HMAC under it (issue 26).

The hash chain alone shows an entry edited or removed, but anyone who can write the catalog can
append an entry of their own and hash it onto the chain (a ``state`` entry that "chains" a row
they edited). The MAC is what they cannot make without the key, which is never in the catalog:
a file the daemon creates at its first start (``[custody] key_file``, default
``<state_dir>/chain.key``, mode 0400, readable by the daemon's user only). ``audit`` checks the
MACs with the key (run as the daemon's user, or with an auditor's copy: ``--chain-key FILE``
or ``CAMDOCK_CHAIN_KEY``). Root on the station can read the key; what stands against root are
the heads on the drives and on the station server (README, "The audit").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from camdock.errors import CamdockError, ExitCode

__all__ = ["ENV", "KeyFileError", "current", "load", "load_or_create", "mac", "use"]

log = logging.getLogger(__name__)

ENV = "CAMDOCK_CHAIN_KEY"  # a key file for this process (a command without a config, an audit)
KEY_BYTES = 32

_current: bytes | None = None
_set = False
_from_env: dict[str, bytes | None] = {}


class KeyFileError(CamdockError):
    """The chain key file is there but is not a chain key."""

    exit_code = ExitCode.CONFIG


def _parse(path: Path, text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"chain key {path}: not {KEY_BYTES} bytes in hex")
    return key


def load(path: Path) -> bytes | None:
    """The key in ``path``, or None when it is not there or not ours to read."""
    try:
        text = path.read_text(encoding="ascii")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    return _parse(path, text)


def load_or_create(path: Path) -> bytes:
    """The daemon's key: read, or made at the first start (mode 0400, linked into place only
    when complete, so two starting at once agree on one key)."""
    if (key := load(path)) is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made it first: then theirs is the key
        log.info("chain key created at %s", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    key = load(path)
    if key is None:
        raise KeyFileError(f"chain key {path}: made but cannot be read back")
    return key


def use(key: bytes | None) -> None:
    """This process's entries are keyed with ``key`` (None: unkeyed, unless ``CAMDOCK_CHAIN_KEY``
    names a file)."""
    global _current, _set
    _current, _set = key, key is not None


def current() -> bytes | None:
    """The key this process's entries carry a MAC under, or None."""
    if _set:
        return _current
    path = os.environ.get(ENV)
    if not path:
        return None
    if path not in _from_env:  # read once: an append is the offload's hot path
        _from_env[path] = load(Path(path))
    return _from_env[path]


def mac(key: bytes, message: str) -> str:
    """An entry's MAC: HMAC-SHA-256 of what its hash covers (before the MAC is added)."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
