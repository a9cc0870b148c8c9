# gwbox: every target sets itself up; nothing relies on what happens to be installed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MP     := $(VENV)/bin/micropython
STAMP  := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/firmware:$(CURDIR)/host_tools

.PHONY: help venv test test-host test-mp lint bench demo clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

# Set-up never half-fails. $(PYTHON) (>= 3.11) is checked before anything is created, in
# one line; a $(VENV) without its stamp is what an interrupted set-up leaves, so it is
# rebuilt from scratch, and the stamp is written only once everything is installed.
# The check runs only when $(VENV) is (re)built: a complete $(VENV) does not need $(PYTHON).
define check_python
$(eval PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null))
$(if $(PYTHON_VERSION),,$(error gwbox needs Python >= 3.11; $(PYTHON) was not found or did not run (use make PYTHON=python3.11)))
$(if $(shell echo '$(PYTHON_VERSION)' | awk -F. '$$1 > 3 || $$1 == 3 && $$2 >= 11 { print "ok" }'),,$(error gwbox needs Python >= 3.11; $(PYTHON) is $(PYTHON_VERSION) (use make PYTHON=python3.11)))
endef

CHIP_NPM := host_tools/gwbox_tools/chip/package.json host_tools/gwbox_tools/chip/package-lock.json

$(STAMP): requirements.txt pyproject.toml $(CHIP_NPM)
	$(check_python)
	@if [ -d $(VENV) ] && [ ! -f $(STAMP) ]; then \
	    echo "$(VENV) is incomplete (an earlier set-up was interrupted): rebuilding it"; rm -rf $(VENV); fi
	rm -f $(STAMP)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	mkdir -p $(VENV)/chip && cp $(CHIP_NPM) $(VENV)/chip/
	cd $(VENV)/chip && ../bin/npm ci --no-audit --no-fund --loglevel=error  # rp2040js for the emulated chip (docs/chip.md)
	touch $(STAMP)

venv: $(STAMP)  ## create .venv: pinned dependencies and the gwbox command (.venv/bin/gwbox)

# Tests run in JOBS pytest processes at once (pytest-xdist): most of them wait on ptys at
# 9,600 baud, so more processes than cores pays. Tests that must not overlap share an
# xdist_group, which one process runs in turn: "cpu" (the MicroPython suite, fuzzing, the
# emulated chip, the storm, timings), so one CPU-bound stream runs beside the real-time
# tests (docs/tools.md). JOBS=1: one process, no workers.
JOBS   ?= 4
XDIST  := $(if $(filter 1,$(JOBS)),-n 0,-n $(JOBS) --dist loadgroup)

test: $(STAMP)  ## every test: pytest on CPython, which also runs the MicroPython suite (JOBS=4 processes)
	$(PY) -m pytest -q $(XDIST) tests

test-host: $(STAMP)  ## quick loop: pytest without the tests that start micropython (JOBS=4 processes)
	$(PY) -m pytest -q $(XDIST) tests --ignore=tests/host/test_micropython_suite.py --ignore=tests/host/test_mp_two_node_scenario.py

test-mp: $(STAMP)  ## the firmware suite under micropython, one process per module, device heaps (32- and 64-bit)
	$(PY) tests/mp_suite.py

demo: $(STAMP)  ## a box (MicroPython, 32-bit at 110K) and a 3-gateway cluster over an emulated modem: a reboot, failover, failback; summary, PNG
	$(PY) -m gwbox_tools.demo --out build/demo

lint: $(STAMP)  ## pyflakes over firmware, host tools, tests and benchmarks
	$(PY) -m pyflakes firmware host_tools tests bench

bench: $(STAMP)  ## run benchmarks, write bench/results.json
	$(PY) bench/run.py

clean:  ## remove the virtual environment, build/ and caches
	rm -rf $(VENV) build .pytest_cache .hypothesis bench/out
