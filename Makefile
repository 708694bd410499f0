# Two commands matter: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test test-fast test-slow lint bench-seed bench-bill-day clean

$(STAMP): pyproject.toml constraints.txt scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	bash scripts/system-deps.sh
	touch $(STAMP)

venv: $(STAMP)

## The main job on the embedded SQLite default: seed a population, run bill day, report.
demo: $(STAMP)
	$(BIN)/python -m flows.demo

## The whole suite, on SQLite and PostgreSQL (slow suites included).
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

## Everything but the suites marked slow.
test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check billing flows blocks expectations tests bench
	$(BIN)/mypy

bench-seed: $(STAMP)
	$(BIN)/python bench/seed.py

bench-bill-day: $(STAMP)
	$(BIN)/python bench/bill_day.py

clean:
	rm -rf $(VENV) var
