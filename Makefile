# The two commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Where `make run` listens: `make run HOST=0.0.0.0 PORT=9000`.
HOST ?= 127.0.0.1
PORT ?= 8000

# The whole dependency tree, pinned: runtime.txt is what the image installs, dev.txt adds the
# test and lint tools and every optional extra. `make lock` writes both from pyproject.toml.
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
# Extras the image carries besides the base dependencies (space-separated names).
RUNTIME_EXTRAS :=
# Extra pip-compile flags: `make lock LOCK_ARGS="--upgrade-package scikit-learn"`.
LOCK_ARGS :=
# Index and find-links options stay out of the lock files: they differ per machine.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)

.PHONY: install browser run migrate test compose-test lint worker clean lock lock-upgrade lock-tools

$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint $(DEV_LOCK) pip
	# --no-deps: exactly what the lock lists, nothing resolved on the day. Its torch line is
	# the CPU build (+cpu): PyPI's torch is a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet --no-deps --requirement $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	# A lock that lacks or contradicts a requirement of pyproject.toml stops here.
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Debian's headless Chromium and its driver, for the dashboard's browser tests: installed
# from the distribution when missing, never a browser downloaded by a test tool.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver; }

run: migrate  ## migrate, then serve on $(HOST):$(PORT) with the worker in-process
	$(BIN)/python -m app serve --host $(HOST) --port $(PORT)

migrate: install  ## create or upgrade the database schema (idempotent)
	$(BIN)/python -m app migrate

worker: install  ## a standalone worker process (APP_WORKER=off on the API then)
	$(BIN)/python -m app worker

test: install  ## the whole suite; PostgreSQL tests run when TEST_DATABASE_URL is set
	$(BIN)/python -m pytest

compose-test: install  ## build the image, run docker-compose.yml in Docker (installs and starts one)
	$(BIN)/python -m pytest -m compose tests/compose

lint: install
	$(BIN)/ruff check app tests benchmarks migrations
	$(BIN)/mypy app
	$(BIN)/mypy --strict app/clustering  # the pure core: fully typed

lock-tools:  # pip-compile alone, at its locked version: a stale lock must not block a refresh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint $(DEV_LOCK) pip pip-tools

lock: lock-tools  ## re-resolve the lock files from pyproject.toml, keeping every pin it still allows
	$(PIP_COMPILE) $(foreach extra,$(RUNTIME_EXTRAS),--extra $(extra)) \
		--output-file $(RUNTIME_LOCK) pyproject.toml
	# dev.txt is constrained by runtime.txt, so the two never pin a package differently
	$(PIP_COMPILE) --all-extras --constraint $(RUNTIME_LOCK) \
		--output-file $(DEV_LOCK) pyproject.toml
	@grep -q '^torch==.*+cpu$$' $(RUNTIME_LOCK) || { echo "torch is not the +cpu build:" \
		"relock where pip finds it (README: Upgrading dependencies)" >&2; exit 1; }

lock-upgrade:  ## every package to the newest release pyproject.toml allows
	$(MAKE) lock LOCK_ARGS=--upgrade

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
