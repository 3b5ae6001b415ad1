# Herald: `make run` starts everything on an embedded AWS; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint format bench bench-quick infra clean venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

run: venv
	$(BIN)/python -m chalicelib.local

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy chalicelib infra app.py
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

infra: venv
	$(BIN)/python -m infra.render

bench: venv
	@$(BIN)/python -m bench

bench-quick: venv
	@$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .herald infra/out .pytest_cache .mypy_cache .ruff_cache
