"""The seal's keys (REG-4.2.5): the current password (credential, root-only file or a
command's ``--password-file``) and the key ring of earlier keys, by id; never printed or logged.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from camdock.config import SealSettings
from camdock.errors import CamdockError, ExitCode

__all__ = ["Key", "SealKeyMissing", "load_current", "load_key", "read_ring"]


class SealKeyMissing(CamdockError):
    """No seal password where it may be (credential, root-only file)."""

    exit_code = ExitCode.NOINPUT


@dataclass(frozen=True)
class Key:
    """A seal password and its id, with the key ring: the passwords of earlier keys by id (a
    day sealed before a rotation needs the key it was sealed under). Passwords are never
    printed, logged or recorded; a seal records only its key's id."""

    id: str
    password: str = field(repr=False)
    ring: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def for_seal(self, key_id: str | None) -> str:
        """The password of the key ``key_id`` (a seal's; None: sealed before ids were kept),
        or SealKeyMissing naming the key the seal needs."""
        if key_id is not None and key_id in self.ring:
            return self.ring[key_id]
        if (key_id is None or key_id == self.id) and self.password:
            return self.password
        raise SealKeyMissing(
            f"sealed under key {key_id}: its password is not here (put "
            f"{key_id}.key in the key ring folder, [seal] key_dir or "
            "--key-dir)"
        )


def read_ring(folder: Path) -> dict[str, str]:
    """Every ``<key id>.key`` in ``folder`` (root-only, as each file): id → password."""
    try:
        st = os.stat(folder)
        if not stat.S_ISDIR(st.st_mode):
            raise SealKeyMissing(f"seal key ring {folder} is not a folder")
        if st.st_mode & 0o077 or st.st_uid not in (0, os.geteuid()):
            raise SealKeyMissing(
                f"seal key ring {folder} must be for root only (mode "
                f"{stat.S_IMODE(st.st_mode):o}): chmod 700"
            )
        files = sorted(folder.glob("*.key"))
    except OSError as exc:
        raise SealKeyMissing(f"seal key ring {folder}: {exc.strerror}") from exc
    return {f.stem: _read_secret(f, private=True) for f in files}


def _read_secret(path: Path, *, private: bool) -> str:
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise SealKeyMissing(f"seal password {path} is not a file")
        if private and (st.st_mode & 0o077 or st.st_uid not in (0, os.geteuid())):
            raise SealKeyMissing(
                f"seal password {path} must be readable by root only "
                f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600"
            )
        text = path.read_bytes().decode("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SealKeyMissing(f"seal password {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SealKeyMissing(f"seal password {path} is not UTF-8 text") from exc
    if len(text) < 12:
        raise SealKeyMissing(f"seal password {path} is shorter than 12 characters")
    return text


def load_key(
    settings: SealSettings, password_file: Path | None = None, key_dir: Path | None = None
) -> Key:
    """The seal password (``load_current``) with the key ring of ``key_dir`` (else ``[seal]
    key_dir``). With a ring and no current password, the ring alone (reading seals only)."""
    folder = key_dir or settings.key_dir
    ring = read_ring(folder) if folder is not None else {}
    try:
        key = load_current(settings, password_file)
    except SealKeyMissing:
        if not ring:
            raise
        return Key(settings.key_id, ring.get(settings.key_id, ""), ring)
    return Key(key.id, key.password, ring)


def load_current(settings: SealSettings, password_file: Path | None = None) -> Key:
    """The seal password: ``--password-file``, else the systemd credential (LoadCredential
    Encrypted=, in $CREDENTIALS_DIRECTORY), else the root-only ``[seal] password_file``."""
    if password_file is not None:
        return Key(settings.key_id, _read_secret(password_file, private=True))
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / settings.credential).exists():  # systemd made it private
        return Key(settings.key_id, _read_secret(Path(creds) / settings.credential, private=False))
    if settings.password_file is not None:
        return Key(settings.key_id, _read_secret(settings.password_file, private=True))
    raise SealKeyMissing(
        f"no seal password: no credential {settings.credential!r} in $CREDENTIALS_DIRECTORY, "
        "no [seal] password_file, no --password-file"
    )
