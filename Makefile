# Set-up is part of every target: each creates the virtual environment it needs from the lock files.
#
# requirements.lock is the full, hash-pinned closure of the project's dependencies, so it is installed
# with --no-deps: pip never resolves anything, never looks at newer uploads on the index, and an extra
# such as smart-open[http] cannot send it to an unpinned release (pypa/pip#9644). The installer itself is
# pinned first (requirements-bootstrap.lock), so the machine's own pip version does not matter.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
# A download that arrives damaged fails its hash check, and pip does not retry that: each install is
# tried up to three times (the hashes still decide what gets installed).
RETRY := sh -c 'for i in 1 2 3; do "$$@" && exit 0; echo "== attempt $$i failed; trying again"; sleep 3; done; exit 1' retry

.PHONY: demo test lint bench serve simulate venv clean

$(STAMP): pyproject.toml requirements.lock requirements-bootstrap.lock
	@echo "== guardproxy set-up: building $(VENV) from requirements.lock"
	@echo "== first time about 2-4 minutes (about 150 packages, 450 MB); later runs skip this step"
	$(PYTHON) -m venv --clear $(VENV)
	$(RETRY) $(PIP) install --no-deps --require-hashes --progress-bar off -r requirements-bootstrap.lock
	$(RETRY) $(PIP) install --no-deps --require-hashes --progress-bar off -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation --progress-bar off -e .
	$(PIP) check
	@echo "== set-up done: the commands are in $(BIN)/ (guardproxy, pytest, ...)"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/guardproxy demo

test: $(STAMP)
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/guardproxy serve

simulate: $(STAMP)
	$(BIN)/guardproxy simulate

lint: $(STAMP)
	$(BIN)/ruff check proxy tests bench
	$(BIN)/mypy proxy

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
