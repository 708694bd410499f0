# Two commands matter: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test test-slow test-all lint bench-seed bench-bill-day clean
.PHONY: server stop ui-screenshot page-images

$(STAMP): pyproject.toml constraints.txt scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	bash scripts/system-deps.sh
	touch $(STAMP)

venv: $(STAMP)

## The main job on the default database (BILLING_DATABASE_URL, else var/billing.db): seed a
## population, run bill day, report. `make server` afterwards shows it in the UI.
demo: $(STAMP)
	$(BIN)/python -m flows.demo

## The fast subset, on SQLite and PostgreSQL: everything not marked slow, on WORKERS
## pytest-xdist workers; a folder sharing one server (tests/conftest.py XDIST_GROUPS) stays on
## one worker. WORKERS=0 runs it in this process. Times and choices: docs/testing.md.
WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow" -n $(WORKERS) --dist loadgroup

## The suites marked slow (crash matrix, Prefect server, browser, Dask). CI runs both.
## Serial: they start servers, kill processes and time them; one at a time keeps them honest.
test-slow: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m slow

## Every suite in one run.
test-all: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

## Style, types and the import contracts of the layers (pyproject [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check billing flows blocks expectations tests bench scripts
	$(BIN)/ruff format --check billing flows blocks expectations tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

bench-seed: $(STAMP)
	$(BIN)/python bench/seed.py

bench-bill-day: $(STAMP)
	$(BIN)/python bench/bill_day.py

## A local Prefect stack (docs/operations.md): server (SQLite under var/prefect, or
## PREFECT_API_DATABASE_CONNECTION_URL) behind the auth string in var/prefect/api-auth-string,
## pool, limit, blocks, mail catcher (PORT+2, var/mail), files server (PORT+1), deployments,
## worker. UI on PORT. Run twice, it changes nothing; `make stop` stops every process.
PORT ?= 4200
server: $(STAMP)
	$(BIN)/python scripts/server.py start --port $(PORT)

stop:
	$(BIN)/python scripts/server.py stop

## Refresh docs/ui-bill-day-run.png with the browser test's own screenshot.
## Page 1 of the sample invoice in fr, pt, de and en, through pdftoppm, into docs/ (review
## them by eye before committing).
page-images: $(STAMP)
	OPENBILL_PAGE_IMAGES=1 $(BIN)/pytest -q -p no:cacheprovider tests/billing/test_page_images.py

ui-screenshot: $(STAMP)
	OPENBILL_UI_SCREENSHOT=$(CURDIR)/docs/ui-bill-day-run.png \
	  $(BIN)/pytest -q -p no:cacheprovider tests/operations/test_ui.py

clean:
	rm -rf $(VENV) var
