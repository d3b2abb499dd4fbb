# The two commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Where `make run` listens: `make run HOST=0.0.0.0 PORT=9000`.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run migrate test compose-test lint worker clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
