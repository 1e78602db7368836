# The README's commands. Each creates .venv on first use (and again when pyproject changes).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean axe

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,preview]"
	touch $(STAMP)

demo: $(STAMP)  ## the whole pipeline on the bundled examples, through the local SendGrid sandbox
	$(VENV)/bin/newsletter demo

# axe-core for the accessibility checks, from the npm registry, into a folder git ignores.
AXE := var/node/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --prefix var/node --no-audit --no-fund --loglevel=error axe-core@4.10

axe: $(AXE)

# In 4 processes (pytest-xdist): most of a test's time is spent waiting on a server, a
# subprocess or Chromium, so 4 keep a 2-core machine busy. Each process has its own
# migrated templates and databases (tests/conftest.py); plain `pytest` runs them in one.
test: $(STAMP) $(AXE)  ## SQLite always; PostgreSQL too when TEST_DATABASE_URL is set
	$(PY) -m pytest -n 4

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)  ## figures and ratios measured side by side in one run
	$(PY) -m bench.run
	$(PY) -m bench.scrape
	$(PY) -m bench.web
	$(PY) -m bench.reports
	$(PY) -m bench.console
	$(PY) -m bench.mail

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
