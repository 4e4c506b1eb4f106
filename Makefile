# The two commands of the README:
#   make run   - create the virtualenv, install, start the service on PORT (5021)
#   make test  - install what the tests need, then run the whole suite
# and make demo - the service off the recording in docs/demo/, with no network at all
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run demo test lint install install-dev node browser promtool nginx recovery clean

run: install
	$(PY) app.py

# The service playing the recording shipped in docs/demo/ (made from the fake exchange: see README, "Upstream
# recording and replay") in a loop instead of Binance: no Binance WebSocket, no REST, no network; Redis only with
# REDIS_ENABLED=true. DEMO_RECORDING plays another recording (a file or a glob), DEMO_SPEED another speed.
DEMO_RECORDING ?= docs/demo/binance-sample.jsonl.gz
DEMO_SPEED ?= 1
demo: install-dev node
	@echo "demo: replaying $(DEMO_RECORDING) in a loop (not Binance: no network needed) on http://localhost:$${PORT:-5021}"
	@echo "  Dashboard:      http://localhost:$${PORT:-5021}/"
	@echo "  Python client:  $(PY) docs/examples/python-client.py --url http://localhost:$${PORT:-5021} --symbols BTCUSDT,ETHUSDT --streams ticker,trade,book --count 20"
	@echo "  Node client:    node docs/examples/node-client.js --url http://localhost:$${PORT:-5021} --symbols BTCUSDT --streams trade,book --count 20"
	@echo "  Browser client: open docs/examples/browser.html?url=http://localhost:$${PORT:-5021}&symbols=BTCUSDT,ETHUSDT,SOLUSDT (socket.io-client from node_modules, else its CDN)"
	@echo "  Health:         curl http://localhost:$${PORT:-5021}/health   (upstream.source: replay)"
	@echo "  Ctrl-C stops the service."
	UPSTREAM_REPLAY_FILE=$(DEMO_RECORDING) UPSTREAM_REPLAY_SPEED=$(DEMO_SPEED) UPSTREAM_REPLAY_LOOP=true \
	  REDIS_ENABLED=$${REDIS_ENABLED:-false} $(PY) app.py

# The static checks, the whole suite with the default async mode (eventlet), then again under gevent the
# end-to-end files whose behaviour depends on the async mode: the HTTP servers, the WebSocket transports (also
# behind nginx) and the fast path, green tasks, client queues, shutdown. The others (fault injection, chaos, rate
# limits, handler properties, the OpenAPI and metrics documents, PM2, the recorder tool) test what is the same
# under both, as do the stream parsing, the dashboard page, the client kits, replay, history and recovery, and the
# Socket.IO event contract (the same transport as the files above, over the same hub, whose code has nothing that
# depends on the async mode). Of Bybit's tests the gevent pass runs its faults (its green connections); of the
# cluster's, the one whose gateways work hardest (a fail-over with three gateways); the others test Redis-side
# behaviour that is the same under both, and a gateway's clients reconnecting through nginx is test_nginx.py's
# transport.
GEVENT_E2E := $(addprefix tests/e2e/test_,bad_input.py compression.py connection_costs.py descriptors.py \
	fast_path.py heartbeat.py http.py nginx.py operations.py slow_consumer.py upstream.py) \
	tests/e2e/test_bybit.py::test_bybit_faults_leave_binance_untouched_and_health_names_bybit \
	tests/e2e/test_cluster.py::test_the_leader_killed_a_standby_leads_within_10s_and_every_client_gets_every_update_once_in_order

test: lint node browser promtool nginx
	ASYNC_MODE=eventlet $(PY) -m pytest --durations=15
	ASYNC_MODE=gevent $(PY) -m pytest --durations=10 $(GEVENT_E2E)

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

# The recorded history's memory, in Redis per stream and in the service, under a sustained load (10 minutes of
# 100 ticks a second; DURATION=seconds to change).
.PHONY: history-memory
history-memory: install-dev
	$(PY) -m bench.history_memory $(if $(DURATION),--seconds $(DURATION))

# What one connected, subscribed, idle client holds in the service, by part (tracemalloc), under eventlet and
# gevent (about 6 minutes; CLIENTS=n to change the 2,000 clients).
.PHONY: client-memory
client-memory: install-dev node
	$(PY) -m bench.client_memory $(if $(CLIENTS),--clients $(CLIENTS))

# Fan-out throughput, latency, CPU and memory per client, under eventlet and gevent and for a Node socket.io
# reference relay (a few minutes per scenario). SCENARIO=fanout|idle|many|trades|cluster|hop (or 1-6,
# comma-separated; default fanout,trades; cluster: 30,000 clients over three gateways against one process with a
# gateway's share; hop: one gateway against one process with the same clients, for the Redis hop), TARGETS=eventlet,gevent,eventlet-unrecorded,bybit,reference
# (eventlet-unrecorded: HISTORY_ENABLED=false, to print what recording costs; bybit: eventlet with EXCHANGES=binance,bybit
# against a fake Bybit, its clients on Bybit's tickers, in fanout by default, skipped for trades), QUICK=1 (100 clients,
# about a minute per scenario). Writes docs/PERFORMANCE.md (not with QUICK).
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

# Debian's nginx, for the test that runs docs/deploy/nginx.conf in front of two service processes
# (tests/e2e/test_nginx.py). In bookworm nginx-light is only a metapackage (nginx plus the echo module); nginx
# itself builds in all the config uses (upstream, map, limit_conn, proxy).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  echo "installing Debian's nginx for the reverse-proxy test (needs root and apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache
