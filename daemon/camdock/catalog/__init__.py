"""The catalog (Annex 1) and everything else the station keeps in SQLite: the only package
with SQL. ``db`` opens and transacts, ``schema`` migrates, and one module per aggregate reads
and writes it (recordings and copies, sessions, custody, outbox, self-tests)."""

from camdock.catalog.db import (
    DatabaseError,
    Store,
    one,
    open_catalog,
    open_readonly,
    rows,
    write_txn,
)

__all__ = ["DatabaseError", "Store", "one", "open_catalog", "open_readonly", "rows", "write_txn"]
