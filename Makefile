# The two commands of the README:
#   make run   - create the virtualenv, install, start the service on PORT (5021)
#   make test  - install what the tests need, then run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint install install-dev node browser promtool recovery clean

run: install
	$(PY) app.py

# The static checks, the whole suite with the default async mode (eventlet), then the end-to-end tests again
# under gevent.
test: lint node browser promtool
	ASYNC_MODE=eventlet $(PY) -m pytest
	ASYNC_MODE=gevent $(PY) -m pytest tests/e2e

# ruff over everything (pyproject.toml: [tool.ruff]); mypy over the service, strict on the pure core.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Time to notice and recover from each upstream, REST and Redis fault (about 2 minutes; QUICK=1: 1 minute).
recovery: install-dev
	$(PY) -m bench.recovery $(if $(QUICK),--quick)

# Fan-out throughput, latency, CPU and memory per client, under eventlet and gevent and for a Node socket.io
# reference relay (a few minutes per scenario). SCENARIO=fanout|idle|many|trades (or 1|2|3|4, comma-separated;
# default fanout,trades), TARGETS=eventlet,gevent,reference, QUICK=1 (100 clients, about a minute per scenario).
# Writes docs/PERFORMANCE.md (not with QUICK).
.PHONY: bench
bench: install-dev node
	$(PY) -m bench.perf $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(TARGETS),--targets $(TARGETS)) $(if $(QUICK),--quick)

# Debian's Chromium for the browser-client test (the only browser build that installs offline here).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser test (needs root and apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Prometheus's promtool, for the test that the live /metrics output passes `promtool check metrics`.
promtool:
	@command -v promtool >/dev/null || { \
	  echo "installing Debian's prometheus for promtool (needs root and apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache
