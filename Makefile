# Two commands a newcomer needs: `make demo` and `make test`. Each makes its own
# virtual environment (.venv) and local tools (node_modules) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf

.PHONY: demo test lint protos bench up clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(BUF): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.installed
	$(PY) -m dualnova.demo

test: $(VENV)/.installed lint
	$(PY) -m pytest

lint: $(VENV)/.installed $(BUF)
	$(BUF) lint protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Regenerate the committed Python stubs after editing protos/.
protos: $(VENV)/.installed
	$(PY) tools/gen_protos.py

up: $(VENV)/.installed
	$(VENV)/bin/dualnova up

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules build *.egg-info
