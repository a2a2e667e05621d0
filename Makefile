# Every install step lives here: CI and a fresh clone run nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test fuzz bench lint typecheck clean browser-check

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "migrator needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Start the built-in fake Zuora with three tenants, migrate samples/ into all of them, report.
demo: $(STAMP)
	$(BIN)/python -m migrator.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# More fuzz examples than `make test` runs.
fuzz: $(STAMP)
	MIGRATOR_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 -m fuzz tests

bench: $(STAMP)
	$(BIN)/python -m bench

# The drift page in headless Chromium (tests/test_browser.py; `make test` skips it without
# chromium). Installs Debian's chromium package first when it is missing and we are root.
browser-check: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
		|| { echo "browser-check: chromium is not on PATH; install it (Debian: apt-get install chromium)" >&2; exit 1; }
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check migrator tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-out
