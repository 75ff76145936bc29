# Two commands: `make demo` and `make test`. Each bootstraps .venv when missing or stale (quietly:
# setuptools' advice about editable installs is no news to this project).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-container lint tools native bench bench-tcp bench-h2 soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet -e '.[dev,loadtest]'
	@touch $(STAMP)

# The per-request path compiled to C (chaosproxy/native.py; about 20 s with mypyc and gcc): built
# again only when one of its sources changed. It fails only where there is no C compiler or no
# Python headers, and then chaosproxy runs as pure Python and says so at startup.
native: $(STAMP)
	@$(BIN)/python -m chaosproxy.native_build --if-stale --log $(VENV)/native.log || \
		echo "make: the per-request path was not compiled (above; $(VENV)/native.log): pure Python" >&2

# Ctrl-C reaches make, this shell and the demo at once: the demo stops cleanly and exits 130,
# which is the end a user asked for, not an error for make to report. The shell traps INT so it
# outlives the signal and can say so. DEMO_ARGS: more flags for it (e.g. DEMO_ARGS="--out DIR").
demo: native
	@trap : INT; $(BIN)/python -m chaosproxy demo $(DEMO_ARGS); status=$$?; \
		if [ $$status -ne 130 ]; then exit $$status; fi

lint: $(STAMP)
	$(BIN)/ruff check chaosproxy tests bench
	$(BIN)/ruff format --check chaosproxy tests bench
	$(BIN)/mypy

# Debian tools the slow suites run for real: Prometheus (a data source for checks) and headless
# Chromium (renders report.html); nghttpd, nghttp and h2load, a real HTTP/2 server, client and
# load generator (tests/proxy/h2); nginx, the upstream of the HTTP/2 benches' smoke test.
# Installs only what is missing; needs root when something is.
# Without them (no root) the suites that need them skip and say why.
tools:
	@ci/debian-tools.sh prometheus chromium redis-server postgres=postgresql \
		nghttpd=nghttp2-server nghttp=nghttp2-client nginx || \
		echo "make tools: prometheus/chromium/redis/postgres/nghttp2/nginx missing; their tests will be skipped" >&2

# Eight test processes on two cores: the real runs (Locust, Prometheus, Chromium, databases)
# mostly wait on real time, so they overlap well. Work stealing, not fixed shares: each process's
# share starts with its part of the slow suites, the longest first (tests/conftest.py), and an idle
# process takes tests from a busy one's queue. Measured here on 2,533 tests: 3 min 29 s; 3 min 50 s
# with six processes; 4 min 33 s with six and the slow suites all in the first share; 12 min with
# fixed shares. PYTEST_ARGS: more pytest options.
PYTEST_PARALLEL := -n 8 --dist worksteal
# Lint runs beside the tests (the tests mostly wait on real time; mypy is ten seconds of CPU):
# its output follows theirs, and either failing fails `make test`.
# This machine's environment sets PYTHONDONTWRITEBYTECODE: then every Python process the suite
# starts (eight test processes, and each proxy, Locust, demo service and CLI run of the real-run
# tests) compiles the package from source again, and each test process rewrites every test
# module's asserts anew. The suite writes its bytecode (to __pycache__, which git ignores).
test: export PYTHONDONTWRITEBYTECODE :=
test: tools native
	@$(MAKE) --no-print-directory lint > $(VENV)/lint.log 2>&1 & lint=$$!; \
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS); tests=$$?; \
	wait $$lint; linted=$$?; cat $(VENV)/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make test: lint failed (above)" >&2; exit $$linted; fi; \
	exit $$tests

# Everything but the slow suites, for a quick local loop.
test-fast: lint native
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) -m 'not slow' $(PYTEST_ARGS)

# The sidecar image built with podman and tested in a pod (as root; see ci/container-smoke.sh).
test-container: $(STAMP)
	ci/container-smoke.sh

# wrk makes the load, nginx is the upstream (Debian packages; the bench falls back without them).
bench: native
	@ci/debian-tools.sh wrk nginx || echo "make bench: wrk/nginx missing; slower fallbacks" >&2
	$(BIN)/python bench/passthrough.py

# TCP pass-through against a direct connection and socat (Debian), a latency fault's overshoot
# (beside the peer Toxiproxy's when it is there), memory per idle connection.
bench-tcp: native
	@ci/debian-tools.sh socat || echo "make bench-tcp: socat missing; its row is skipped" >&2
	$(BIN)/python bench/tcp_passthrough.py

# HTTP/2: h2load through the proxy against HTTP/1.1 and a minimal h2 proxy, memory per idle h2c
# connection, a latency fault's overshoot per stream (nginx is the upstream).
bench-h2: native
	@ci/debian-tools.sh nginx h2load=nghttp2-client || echo "make bench-h2: nginx/h2load missing" >&2
	$(BIN)/python bench/h2_passthrough.py
	$(BIN)/python bench/h2_idle_connections.py
	$(BIN)/python bench/h2_faults.py

# Five minutes at ~70 % of capacity while scenarios and rules churn; exits 1 on resource growth
# or a client error no injected fault explains (bench/soak.py; SOAK_ARGS="--duration 900").
soak: native
	@ci/debian-tools.sh nginx || echo "make soak: nginx missing; an aiohttp upstream instead" >&2
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
