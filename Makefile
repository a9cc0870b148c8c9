# gwbox: every target sets itself up; nothing relies on what happens to be installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
MP     := $(VENV)/bin/micropython
STAMP  := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/firmware:$(CURDIR)/host_tools

.PHONY: help venv test test-host test-mp lint bench demo clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install pinned dependencies

test: $(STAMP)  ## every test: pytest on CPython, which also runs the MicroPython suite
	$(PY) -m pytest -q tests

test-host: $(STAMP)  ## quick loop: pytest without the tests that start micropython
	$(PY) -m pytest -q tests --ignore=tests/host/test_micropython_suite.py --ignore=tests/host/test_mp_two_node_scenario.py

test-mp: $(STAMP)  ## the firmware suite under the real micropython binary, one process per module (64K heap)
	$(PY) tests/mp_suite.py

demo: $(STAMP)  ## box + gateway over an emulated modem: handshake, data, keepalives, dead gateway detected; timeline PNG
	$(PY) -m gwbox_tools.demo --out build/demo

lint: $(STAMP)  ## pyflakes over firmware, host tools, tests and benchmarks
	$(PY) -m pyflakes firmware host_tools tests bench

bench: $(STAMP)  ## run benchmarks, write bench/results.json
	$(PY) bench/run.py

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis bench/out
