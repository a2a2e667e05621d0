# Every install step lives here: CI and a fresh clone run nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test dist fuzz bench lint typecheck clean browser-check

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "migrator needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# The distribution was called `migrator` before 0.1.0 was renamed (the name on PyPI is
	@# someone else's): drop that editable install so only one owns the `migrator` script.
	$(BIN)/python -m pip uninstall --quiet --yes migrator 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Start the built-in fake Zuora with three tenants, migrate samples/ into all of them, report.
demo: $(STAMP)
	$(BIN)/python -m migrator.demo

# The whole suite on every core (pytest-xdist). Tests marked xdist_group(NAME) share one worker
# (a module's built wheel, a browser); the rest are spread one by one. Bytecode is cached, so
# the suite's few hundred `migrator` subprocesses don't compile the package each time.
# pytest's last line gives the count and the time. TESTS=... runs a selection; pytest's
# "no tests ran" (exit 5, e.g. a -k that matches nothing) is said, not a failure.
# Four workers per core: most tests wait on loopback HTTP, subprocesses and the fake's clocks, so
# fewer workers left the cores idle (1,507 tests, idle two-core machine: 3 min 7 s with four
# workers, 2 min 50 s with six, 2 min 36 s to 3 min 16 s with eight, for about 4 min 50 s of CPU each).
# TEST_WORKERS=N overrides.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 4 )))
test: $(STAMP)
	@env -u PYTHONDONTWRITEBYTECODE $(PYTEST) -n $(TEST_WORKERS) --dist loadgroup $(TESTS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests ran (pytest exit 5)"; rc=0; fi; exit $$rc

# The wheel and the sdist in dist/ (the Dockerfile installs the wheel).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-out dist
