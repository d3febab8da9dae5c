# spatialgen: `make demo` runs the main job, `make test` the fast test suite. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-stamp
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
DAC_PIN ?= descript-audio-codec==1.0.0 descript-audiotools==0.7.2 torchaudio==2.11.0
export HF_HUB_DISABLE_TELEMETRY=1

.PHONY: help setup test test-slow demo bench lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/dac.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: a looser install would download a different multi-GB build.
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -r requirements/dac.txt
	$(PIP) install -q --no-deps $(DAC_PIN)
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install spatialgen (editable) with test tools

test: $(STAMP)  ## fast test suite (minutes, CPU)
	$(PY) -m pytest -q

test-slow: $(STAMP)  ## only the slow tests
	$(PY) -m pytest -q -m slow

demo: $(STAMP)  ## the main job on the embedded synthetic data (examples/demo)
	$(PY) -m examples.demo --out demo_out

bench: $(STAMP)  ## benchmarks, JSON results under bench/results/
	$(PY) bench/run_all.py

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src zoo tests bench examples
	$(VENV)/bin/ruff format --check src zoo tests bench examples

format: $(STAMP)  ## ruff autofix + format
	$(VENV)/bin/ruff check --fix src zoo tests bench examples
	$(VENV)/bin/ruff format src zoo tests bench examples

clean:  ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
