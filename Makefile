# camdock: two commands on a fresh machine — `make test` and `make demo`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup test test-shifted test-fast check demo demo-fleet bench wheel lock wheelhouse clean

setup:
	@scripts/setup

# Every test. Fault-injection tests (marked slow) run too. The udev tests run in a second
# pytest under umockdev-wrapper (a testbed redirects /sys, which the loop-device tests must not
# see), even when the first failed; both summaries at the end (scripts/run-tests).
test: setup
	@VENV=$(VENV) scripts/run-tests

# The fast tests again with the machine's clock moved ahead and across a leap day's month end;
# any outcome that differs from the last `make test` fails (CI runs it after `make test`).
test-shifted: setup
	@VENV=$(VENV) scripts/shifted-tests

# The quick loop while developing: everything but the slow fault-injection tests.
test-fast: setup
	$(PYTEST) --ignore=tests/udev -m "not slow"

check: setup
	$(VENV)/bin/ruff format --check daemon tests bench
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/mypy

# The simulated station: four bays at shift end, events to a local broker (scripts/demo).
demo: setup
	@scripts/demo

# The station server: a RabbitMQ cluster, PostgreSQL, camdock server and its fleet view, and a
# few simulated stations (camdock/server/demo.py); Ctrl-C stops everything it started.
demo-fleet: setup
	$(PY) -m camdock.server.demo

# The copy path against cat/cp/sha256sum (root: loop devices, cgroup throttling). The station and
# outbox benchmarks run on their own (README, bench/RESULTS.md).
bench: setup
	$(PY) bench/offload_bench.py

# The wheel the Ansible role installs on a station (ansible/README.md).
wheel: setup
	$(PY) -m pip wheel -q --no-deps -w dist .

# The hash-pinned lock of every dependency, for every platform at once (uv's universal
# resolution; `uv` is in the dev extra). Run after changing pyproject.toml's dependencies.
lock: setup
	$(VENV)/bin/uv pip compile --universal --python-version 3.11 --generate-hashes --no-header \
		--annotation-style line --index-url https://pypi.org/simple pyproject.toml \
		-o requirements/pi.lock
	$(VENV)/bin/uv pip compile --universal --python-version 3.11 --generate-hashes --no-header \
		--annotation-style line --index-url https://pypi.org/simple requirements/build.in \
		-o requirements/build.lock

# Wheels for the Pi's platforms from the lock (hash-checked), so a station installs with no
# index: wheelhouse/<arch>/ (ansible/README.md). WHEELHOUSE_ARCH=x86_64 for a PC or the CI root.
WHEELHOUSE_ARCH ?= aarch64 armv7l
wheelhouse: setup
	$(PY) scripts/wheelhouse $(WHEELHOUSE_ARCH)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
