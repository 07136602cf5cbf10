"""Console passwords, hashed with scrypt (memory-hard, in Python's standard library): the
config holds ``scrypt$<n>$<r>$<p>$<salt>$<hash>``, never a password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["hash_password", "problem", "verify"]

N, R, P = 2**15, 8, 1  # 32 MiB per hash: slow to guess, quick enough to log in


def hash_password(password: str) -> str:
    """The stored form of ``password``."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 << 20)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(key).decode()}"


def problem(stored: str) -> str | None:
    """Why ``stored`` is not a password hash this module wrote, or None."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdigit() for x in parts[1:4]):
        return "not a scrypt hash: make one with camdock staff hash-password"
    return None


def verify(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant time)."""
    if problem(stored):
        return False
    _, n, r, p, salt, key = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                         p=int(p), maxmem=64 << 20)  # fmt: skip
    return hmac.compare_digest(got, base64.b64decode(key))
