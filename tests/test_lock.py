"""The hash-pinned lock (issue 30): it pins every dependency pyproject.toml names, within the
ranges pyproject.toml allows, each with its hashes, so `pip --require-hashes` can install a
station from it (requirements/README.md). `make lock` rewrites it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "pi.lock"


def _pins() -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes)."""
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if m:
            found[canonicalize_name(m.group(1))] = (m.group(2), block.count("--hash=sha256:"))
    return found


def test_the_lock_pins_every_dependency_within_its_range_with_hashes() -> None:
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {LOCK.name}: run make lock"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), (text, version)
    assert all(hashes >= 1 for _, hashes in pins.values())
    # Nothing without a pin: every line of the lock that names a package pins it exactly.
    names = re.findall(r"^([A-Za-z0-9][^\s=;]*)", LOCK.read_text(), re.MULTILINE)
    assert {canonicalize_name(n) for n in names} == set(pins)
