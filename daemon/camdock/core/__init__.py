"""The functional core: pure functions over frozen dataclasses, no I/O; it imports only the
standard library and the domain types (``camdock.model``, ``camdock.errors``)."""
