# The two commands the README opens with: `make demo` and `make test`.
# Each creates .venv when it is missing and installs the project with its test extras.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint audit bench browser postgres clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/harness demo

test: $(STAMP)
	$(BIN)/ruff check harness tests bench loadtests tools conftest.py
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench loadtests tools conftest.py

# bandit over the package and pip-audit over the installed dependencies, against audit-exceptions.toml;
# needs https://pypi.org (fails, exit 2, when it cannot reach it). Not part of `make test`.
audit: $(STAMP)
	$(BIN)/python tools/audit.py

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# headless Chromium and a CJK font, for the tests that render HTML reports (Debian; needs root)
browser:
	apt-get install -y chromium fonts-wqy-zenhei || (apt-get update && apt-get install -y chromium fonts-wqy-zenhei)

# PostgreSQL server binaries for the central-store tests (they start a throwaway server themselves)
postgres:
	apt-get install -y postgresql || (apt-get update && apt-get install -y postgresql)

clean:
	rm -rf $(VENV) build *.egg-info harness-demo reports/*.db reports/*.db-wal reports/*.db-shm
