"""The package's layers hold (issue 25, item 7): no part imports a part above it or beside it
(the catalog and the adapters never each other), and no modules import each other as they load.
The checker itself is tried on a small package made to break each rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from camdock import _layers


def test_the_package_keeps_its_layers() -> None:
    assert _layers.check() == []


def test_the_check_anyone_can_run_says_so() -> None:
    done = subprocess.run([sys.executable, "-m", "camdock._layers"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "", done.stdout
    assert "0 problem(s)" in done.stderr


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "camdock"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_an_upward_or_sideways_import_is_named_with_its_line(tmp_path: Path) -> None:
    package = _package(tmp_path, {
        "core/__init__.py": "",
        "core/rules.py": "import os\nfrom camdock.catalog import rows\n",
        "catalog/__init__.py": "",
        "catalog/rows.py": "from camdock.adapters.fsio import write\n",
        "adapters/__init__.py": "",
        "adapters/fsio.py": "def write():\n    from camdock import catalog\n",
        "surprise.py": "",
        "services/__init__.py": "from camdock import surprise\n",
    })  # fmt: skip
    problems = _layers.check(package)
    assert (
        f"{package}/core/rules.py:2: core may not import catalog (camdock.catalog.rows)" in problems
    )
    assert any("catalog/rows.py:1: catalog may not import adapters" in p for p in problems)
    # an import inside a function still crosses the layer
    assert any("adapters/fsio.py:2: adapters may not import catalog" in p for p in problems)
    assert any("surprise is in no layer" in p or "may not import surprise" in p for p in problems)


def test_modules_that_import_each_other_as_they_load_are_a_cycle(tmp_path: Path) -> None:
    package = _package(tmp_path, {
        "services/__init__.py": "from camdock.services import a\n",  # a re-export: no cycle
        "services/a.py": "from camdock.services import b\n",
        "services/b.py": "from camdock.services.c import x\n",
        "services/c.py": "from typing import TYPE_CHECKING\nimport camdock.services.a\nx = 1\n",
        "services/d.py": "import camdock.services.e\n",
        "services/e.py": "def later():\n    import camdock.services.d\n",  # not at load
        "services/f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    import camdock.services.g\n",
        "services/g.py": "import camdock.services.f\n",
    })  # fmt: skip
    problems = _layers.check(package)
    assert problems == [
        "import cycle at load: camdock.services.a → camdock.services.b → camdock.services.c"
    ]


def test_sql_and_sqlite3_only_in_the_catalog(tmp_path: Path) -> None:
    package = _package(tmp_path, {
        "catalog/__init__.py": "import sqlite3\nQ = 'SELECT id FROM recordings'\n",
        "services/__init__.py": "",
        "services/audit.py": "import sqlite3\n"
                             "def f(db):\n"
                             "    return db.execute(\n"
                             "        'SELECT r.id FROM recordings r '\n"
                             "        'WHERE r.destroyed_at IS NULL')\n"
                             "HELP = 'select the footage from a day'\n",  # prose, not SQL
        "commands/__init__.py": "from sqlite3 import Error\nX = 'UPDATE holds SET state = 1'\n",
    })  # fmt: skip
    assert _layers.sql_outside(package) == [
        f"{package}/commands/__init__.py:1: sqlite3 outside the catalog",
        f"{package}/commands/__init__.py:2: SQL outside the catalog",
        f"{package}/services/audit.py:1: sqlite3 outside the catalog",
        f"{package}/services/audit.py:4: SQL outside the catalog",
    ]
