# The two commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser run test lint worker clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's headless Chromium and its driver, for the dashboard's browser tests: installed
# from the distribution when missing, never a browser downloaded by a test tool.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver; }

run: install  ## migrate, then serve on 127.0.0.1:8000 with the worker in-process
	$(BIN)/python -m app migrate
	$(BIN)/python -m app serve --host 127.0.0.1 --port 8000

worker: install  ## a standalone worker process (APP_WORKER=off on the API then)
	$(BIN)/python -m app worker

test: install  ## the whole suite; PostgreSQL tests run when TEST_DATABASE_URL is set
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check app tests benchmarks migrations
	$(BIN)/mypy app
	$(BIN)/mypy --strict app/clustering  # the pure core: fully typed

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
