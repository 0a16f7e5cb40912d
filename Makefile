# Chord DHT — developer tasks. GNU make + bash.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Node dev tools (newman runs docs/postman/ in the tests); reinstalled when the lock changes.
NODE_STAMP := node_modules/.installed
NPM ?= npm
PYTEST_ARGS ?=

PROTOS := $(wildcard proto/*.proto)
# For proto/X.proto protoc writes proto/X_pb2.py, proto/X_pb2.pyi and proto/X_pb2_grpc.py.
PB2 := $(PROTOS:.proto=_pb2.py) $(PROTOS:.proto=_pb2.pyi) $(PROTOS:.proto=_pb2_grpc.py)

# glibc malloc tuning: keep 1 MiB gRPC message buffers off mmap (roughly doubles throughput
# of big messages here), give freed memory back above 16 MiB, and use one malloc arena:
# measured with bench.transfer, per-thread arenas each kept freed transfer buffers
# (peak RSS 157 MiB on a 1 GiB upload, 85 MiB with one arena) at no throughput cost.
export MALLOC_MMAP_THRESHOLD_ := 67108864
export MALLOC_TRIM_THRESHOLD_ := 16777216
export MALLOC_ARENA_MAX := 1

.PHONY: help install system-packages installed run lint mypy check test test-containers \
	faults bench clean

help:
	@echo "make install  .venv + deps, protobuf code, npm ci (newman), chromium, fuse3, rsync, litmus, rclone (apt)"
	@echo "make run      install, then start a local ring of 4 peers"
	@echo "make lint     ruff, ruff format --check, mypy (the code and the tests)"
	@echo "make mypy     mypy alone (strict; the pre-commit hook)"
	@echo "make check    lint, then the fast tests: unit, sim, property, storage (about 2 minutes)"
	@echo "make test     lint, then the whole pytest suite (extra args: PYTEST_ARGS='-k foo')"
	@echo "              Only make install installs anything; on a fresh clone: make install test"
	@echo "make test-containers  build the image, run it, compose.yaml and docs/deploy-ec2.md (podman, root)"
	@echo "make faults   the full fault matrix (16 peers, k=3, 500 files): docs/reliability.md"
	@echo "make bench    lookup benchmark with 16, 32 and 64 peers"
	@echo "make clean    remove generated code, caches, data/ and .run/"

install: $(STAMP) $(PB2) $(NODE_STAMP) system-packages

# Debian packages some features and their tests need, installed only when missing and only
# as root (one apt-get for all); otherwise we say what to install, and the tests that need
# them skip with that reason:
#   chromium - the dashboard's browser tests (Playwright from pyproject drives Debian's
#              Chromium; Playwright's own browser download needs the internet)
#   fuse3    - `client.py mount` (fusermount3 and libfuse3; mfusepy is in pyproject)
#   rsync    - the mount's tests copy a tree into it with `rsync -a`, as users do
#   litmus   - the WebDAV conformance suite, run against a live ring
#   rclone   - a WebDAV client: copy, check and mount the ring's /dav/ share
CHROMIUM ?= /usr/bin/chromium
system-packages:
	@missing=""; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	command -v fusermount3 >/dev/null || missing="$$missing fuse3"; \
	command -v rsync >/dev/null || missing="$$missing rsync"; \
	command -v litmus >/dev/null || missing="$$missing litmus"; \
	command -v rclone >/dev/null || missing="$$missing rclone"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing \
	      || { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
	           --no-install-recommends $$missing; }; } >/dev/null \
	    || echo "warning: apt-get could not install$$missing; the tests needing them will skip"; \
	else \
	    echo "note: missing Debian packages:$$missing (sudo apt-get install$$missing);" \
	         "the dashboard's browser, mount or WebDAV client tests that need them will skip"; \
	fi

$(PY):
	python3 -m venv $(VENV)

# Reinstall only when the dependency lists change. The lists are read from pyproject.toml
# (tomllib) so nothing gets built or packaged; `installed` compares them with the copy kept
# here.
REQUIREMENTS := $(VENV)/requirements.txt
LIST_DEPS := import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c '$(LIST_DEPS)' > $(REQUIREMENTS)
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	touch $@

# newman (dev tool only) from package-lock.json. Without npm the install goes on and says
# so (tests/integration/test_postman.py skips when node is absent, fails when only newman
# is); the stamp is not written, so the next install retries.
$(NODE_STAMP): package.json package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
	    echo "$(NPM) ci --no-audit --no-fund"; \
	    $(NPM) ci --no-audit --no-fund && touch $@; \
	else \
	    echo "make install: npm not found, so newman (runs docs/postman/ in the tests) is not" \
	         "installed: install Node.js >= 16 with npm and run make install again" \
	         "(without node, tests/integration/test_postman.py is skipped)" >&2; \
	fi

# Run from the repo root with -I. so the grpc module imports `from proto import X_pb2`.
# Depends on the stamp because grpc_tools comes from the install step. A pattern rule with
# several targets runs its recipe once for all of them.
proto/%_pb2.py proto/%_pb2.pyi proto/%_pb2_grpc.py: proto/%.proto $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $<
	@touch proto/$*_pb2.py proto/$*_pb2.pyi proto/$*_pb2_grpc.py

# Every target but install and run only checks that the install is there and current, so
# that running the tests never installs anything (no apt, npm or pip behind your back).
installed:
	@stale=""; \
	[ -f $(STAMP) ] && $(PY) -c '$(LIST_DEPS)' | cmp -s - $(REQUIREMENTS) \
	    || stale="$$stale .venv"; \
	for proto in $(PROTOS); do \
	    [ "$${proto%.proto}_pb2.py" -nt "$$proto" ] || stale="$$stale $$proto"; \
	done; \
	if [ -n "$$stale" ]; then \
	    echo "missing or out of date:$$stale; run make install first (make install test" \
	         "on a fresh clone)" >&2; \
	    exit 1; \
	fi

run: install
	$(PY) run_node.py --local-ring 4

# Everything Python in the repository; mypy reads pyproject.toml for what is strict.
TYPED := chord services config clientlib devtools faults bench tests server.py run_node.py \
	client.py

lint: installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --config-file pyproject.toml $(TYPED)

# mypy alone (the pre-commit hook runs this: strict types are checked across modules, so
# always over everything, not over the files a commit touches).
mypy: installed
	$(PY) -m mypy --config-file pyproject.toml $(TYPED)

# The fast layers: no peer processes, no network, no test marked slow (the simulator's
# CLI in subprocesses). -x: stop at the first failure.
FAST_TESTS := tests/unit tests/sim tests/property tests/storage
check: lint
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS) $(FAST_TESTS)

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The container tests alone, with the deployment files' static checks: podman builds the
# Dockerfile; containers form a ring, compose.yaml's ring comes up and down, and the commands
# of docs/deploy-ec2.md run on network namespaces standing in for instances (about 2-3
# minutes). They need root; podman is used as found, or installed by
# ../shared/tools/container-engine.sh where that script sits beside the repository (these
# test machines, which reach no container registry); otherwise they are skipped with one
# line saying why. make test runs them too.
test-containers: installed
	$(PY) -m pytest -q $(PYTEST_ARGS) tests/containers tests/unit/test_deploy_files.py

# The whole fault matrix at the issue's scale, one scenario after another on fresh rings
# (about 9 minutes on 2 cores); writes the figures to docs/reliability.md.
# make test runs a small subset of it (tests/faults).
FAULTS_ARGS ?= all --peers 16 --replicas 3 --files 500 --seed 1
faults: installed
	$(PY) -m faults $(FAULTS_ARGS) --report docs/reliability.md

bench: installed
	$(PY) -m bench.lookup --peers 16
	$(PY) -m bench.lookup --peers 32
	$(PY) -m bench.lookup --peers 64

clean:
	rm -f proto/*_pb2.py proto/*_pb2_grpc.py proto/*_pb2.pyi
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .mypy_cache .ruff_cache data/ .run/ *.egg-info
