# Two commands a newcomer needs: `make demo` and `make test`. Each makes its own
# virtual environment (.venv) and local tools (node_modules) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf

.PHONY: demo test lint protos bench bench-quick up traces clean constraints

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(BUF): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

demo: $(VENV)/.installed
	$(PY) -m dualnova.dev.demo

# Two pytest-xdist workers, a test file each at a time (a file's module fixtures stay in one
# worker): the suite mostly waits on its processes, so two halve the time on 2 CPUs; three
# were faster still but made the pseudo-terminal tests flaky (1-2 failures in 3 of 4 runs).
test: $(VENV)/.installed lint
	$(PY) -m pytest -n 2 --dist loadfile

# buf breaking: the contract may only grow. protos/ is compared with main's committed protos
# (in CI, a fresh clone of main, that is HEAD's: the working tree must not break them). A
# checkout without a local main (detached, single-branch) compares with origin/main, else HEAD.
PROTOS_GIT := $(shell git rev-parse --git-common-dir 2>/dev/null)
PROTOS_BASE = $(shell git rev-parse --verify --quiet refs/heads/main >/dev/null && echo branch=main \
	|| { git rev-parse --verify --quiet refs/remotes/origin/main >/dev/null && echo ref=origin/main; } \
	|| echo ref=HEAD)

lint: $(VENV)/.installed $(BUF)
	$(BUF) lint protos
ifeq ($(PROTOS_GIT),)
	@echo "buf breaking: skipped, not a git checkout"
else
	$(BUF) breaking protos --against '$(PROTOS_GIT)#$(PROTOS_BASE),subdir=protos'
endif
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

# Re-pin the image's runtime dependencies (constraints.txt) from a fresh install of the project.
constraints:
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/pip install --quiet --disable-pip-version-check .
	{ sed -n '1,3p' constraints.txt; build/constraints-venv/bin/pip freeze --exclude dualnova; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf build/constraints-venv

# Regenerate the committed Python stubs after editing protos/.
protos: $(VENV)/.installed
	$(PY) tools/gen_protos.py

up: $(VENV)/.installed
	$(VENV)/bin/dualnova up

# `dualnova up` with both services' traces in a browser: Arize Phoenix (the `traces` extra) in its
# own environment, .venv/traces, holding only the viewer, so its dependencies never reach .venv
# (which `make test` uses). The launcher (dualnova/dev/traces.py) runs in .venv; ARGS go to up.
TRACES_VENV := $(VENV)/traces

$(TRACES_VENV)/.installed: pyproject.toml $(VENV)/.installed
	$(PYTHON) -m venv $(TRACES_VENV)
	$(TRACES_VENV)/bin/pip install --quiet --disable-pip-version-check $$($(PY) -m dualnova.dev.traces --requirements)
	touch $@

traces: $(VENV)/.installed $(TRACES_VENV)/.installed
	$(PY) -m dualnova.dev.traces --viewer $(TRACES_VENV)/bin/phoenix -- $(ARGS)

# The benchmark runs in its own environment, .venv/bench, with the `bench` extra (aiobotocore,
# matplotlib): aiobotocore pins botocore, and that pin must not reach .venv, which `make test`
# and `make demo` use. Inside .venv, so `make clean` removes it too.
BENCH_VENV := $(VENV)/bench
BENCH_PY := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m bench

# Under a minute on 2 cores: the machinery end to end, not numbers to quote.
bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m bench --quick

clean:
	rm -rf $(VENV) node_modules build *.egg-info .mypy_cache
