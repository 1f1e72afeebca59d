# Every target that needs Python creates or refreshes .venv itself, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/config/onebot11.json5

.PHONY: run test fuzz lint bench clean browser koishi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ocr,translate]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/onebot-gateway run --config $(CONFIG)

# The console's browser tests drive Debian's chromium (no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# The Koishi app the multi-account tests run (tests/koishi_harness.py), from its lock file; npm's
# own record of the tree (node_modules/.package-lock.json) is the stamp, so `npm ci` runs again
# only when it is missing or older than the lock.
KOISHI := tests/koishi
$(KOISHI)/node_modules/.package-lock.json: $(KOISHI)/package-lock.json
	cd $(KOISHI) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
koishi: $(KOISHI)/node_modules/.package-lock.json

# Four workers, a test file each at a time: most tests wait on sockets and child processes, so
# even on two CPUs the suite takes about half as long as in one process (TEST_WORKERS=0: serial).
TEST_WORKERS ?= 4
test: $(STAMP) browser koishi
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# The robustness suite with many more generated inputs and larger bursts than `make test` runs
# (tests/robustness/conftest.py: the `fuzz` hypothesis profile).
fuzz: $(STAMP)
	ROBUSTNESS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/robustness

lint: $(STAMP)
	$(BIN)/ruff check gateway tests
	$(BIN)/ruff format --check gateway tests
	$(BIN)/mypy gateway

# gateway vs a bare aiohttp baseline (bench/run.py); QUICK=1 is a ~1 minute smoke run, and only a
# full run rewrites the table in bench/RESULTS.md. wrk comes from apt when missing.
bench: $(STAMP)
	command -v wrk >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,--results bench/RESULTS.md)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(KOISHI)/node_modules
