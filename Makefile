# The two README commands: `make demo` and `make test`. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Azure's Blob emulator for the azure_blob tests, into an ignored folder the tests look in, from
# the lockfile in tests/azurite (every dependency pinned). 3.35 is the last release that runs on Node 20. Without npm the tests that need it are skipped
# (and fail under CI=true).
AZURITE := .cache/azurite/node_modules/.bin/azurite-blob

.PHONY: install demo test lint format bench clean

install: $(VENV)/.installed $(AZURITE)

$(AZURITE): tests/azurite/package.json tests/azurite/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p .cache/azurite && cp tests/azurite/package.json tests/azurite/package-lock.json .cache/azurite/ && \
	  npm ci --prefix .cache/azurite --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "npm not found: the Azure Blob (Azurite) tests will be skipped"; \
	fi

# uv first, to install the rest quickly; it is also one of Shoal's dependencies (builds job
# environments), so the second step keeps it. `.[dev]` includes the `sweeps` and `devbox` extras.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade uv
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	touch $@

demo: install
	$(PY) -m compileall -q src
	bash scripts/demo.sh

# Byte-compile our sources too: with PYTHONDONTWRITEBYTECODE set, every CLI call in the tests
# would otherwise recompile them. The test modules run on TEST_WORKERS processes (pytest-xdist),
# a module per worker: most of a test's time is spent waiting on servers and jobs it started, so
# even 2 cores keep 4 workers busy (3 took 12 min 15 s on a quiet machine). TEST_WORKERS=0 runs them in this process. The 25 slowest
# tests are listed at the end, so a run over its 10-minute budget says where the time went.
TEST_WORKERS ?= 4
test: install
	$(PY) -m compileall -q src
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

CODE := $(wildcard src tests benchmarks scripts)

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format $(CODE)
	$(VENV)/bin/ruff check --fix $(CODE)

# Each benchmark rewrites its own section of docs/benchmarks.md; peers (MLflow, Ray) are found as
# benchmarks/README.md says, and skipped with a note when absent.
bench: install
	$(PY) benchmarks/assets.py
	$(PY) benchmarks/job_start.py
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/tracking_scale.py
	$(PY) benchmarks/pipelines.py
	$(PY) benchmarks/sweeps.py
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/object_storage.py
	$(PY) benchmarks/ray_compute.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .cache/azurite
