# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
# Each creates or refreshes .venv from pinned requirements (idempotent: a stamp file
# records the last install and is redone only when an input changed).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mbrl-installed
# pybullet 3.2.7 ships wheels for CPython 3.10/3.11 only; prefer those.
PYTHON ?= $(shell command -v python3.11 || command -v python3.10 || command -v python3)
INSTALL_INPUTS := requirements.txt setup.py setup.cfg package.xml resource/mbrl scripts/link_share.py

# ROS 2 from wheels: ament looks for share/ directories under the venv; DDS stays on
# this host so parallel runs and other machines never see each other.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED := 1

# The optional viewer (rerun-sdk) and the tools of its tests (rosbags, a DevTools client),
# pinned apart from requirements.txt; `make test` installs them, `make demo` does not.
VIEW_STAMP := $(VENV)/.mbrl-view-installed

.PHONY: venv view-deps demo test test-expensive lint format bench clean help

help:
	@echo "make demo   - set up .venv if needed and run the demo"
	@echo "make test   - set up .venv if needed and run the test suite"
	@echo "make view-deps - the optional web viewer (mbrl demo --view, mbrl view runs/<name>)"
	@echo "make lint / format / bench / test-expensive / clean"

venv: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) scripts/link_share.py $(VENV)
	@touch $(STAMP)

view-deps: $(VIEW_STAMP)

# Debian's chromium renders the viewer in test/view; installed when we are root (CI is),
# otherwise the browser test says what to install and skips.
$(VIEW_STAMP): $(STAMP) requirements-view.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-view.txt
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "chromium not installed: the browser test will skip (apt-get install chromium)"; }
	@touch $(VIEW_STAMP)

demo: $(STAMP)
	$(PY) -m mbrl demo

test: $(STAMP) $(VIEW_STAMP)
	$(PY) -m pytest -m "not expensive" $(PYTEST_ARGS)

test-expensive: $(STAMP) $(VIEW_STAMP)
	$(PY) -m pytest -m expensive $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src test bench launch scripts
	$(VENV)/bin/ruff format --check src test bench launch scripts

format: $(STAMP)
	$(VENV)/bin/ruff format src test bench launch scripts
	$(VENV)/bin/ruff check --fix src test bench launch scripts

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build install log src/*.egg-info .pytest_cache
