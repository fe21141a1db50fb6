# voxgate — `make` (or `make help`) lists the targets.

PYTHON      ?= python3
VENV        ?= .venv
# uv (the default) or pip: what installs voxgate into the venv. uv is taken from PATH when there is
# one, else pip installs it into the venv first; tools/uv_pip.py hands it pip's configured sources.
INSTALLER   ?= uv
UV          ?= $(shell command -v uv 2>/dev/null)
PYTEST_ARGS ?=
RUN_ARGS    ?=
BENCH_ARGS  ?=
SOAK_ARGS   ?=
CONTAINER   ?= docker
IMAGE       ?= voxgate:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

SHELL       := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS   += --no-builtin-rules --warn-undefined-variables

BIN := $(VENV)/bin
PY  := $(BIN)/python
BUF := node_modules/.bin/buf

# Stamps make `setup` instant when pyproject.toml / package-lock.json have not changed. `run` needs
# only voxgate's runtime dependencies; everything else (tests, lint, proto, bench) also the dev extra.
RUNTIME_STAMP := $(VENV)/.voxgate-runtime
DEV_STAMP     := $(VENV)/.voxgate-installed
NPM_STAMP     := node_modules/.voxgate-installed

# Every proto under protos/ generates four files under server/ (same relative path).
PROTOS    := $(sort $(shell find protos -name '*.proto'))
GEN_STEMS := $(patsubst protos/%.proto,server/%,$(PROTOS))
GENERATED := $(foreach s,$(GEN_STEMS),$(s)_pb2.py $(s)_pb2.pyi $(s)_pb2_grpc.py $(s)_pb2_grpc.pyi)
# ...and lives in a package: server/voxgate/speech/v1/__init__.py and server/voxgate/speech/__init__.py.
GEN_PKGS  := $(sort $(foreach d,$(patsubst %/,%,$(dir $(GEN_STEMS))),$(d) $(patsubst %/,%,$(dir $(d)))))
GEN_INITS := $(addsuffix /__init__.py,$(GEN_PKGS))

# The polyglot clients: Node (its own package.json + lockfile), Go (built into a GOPATH in build/go)
# and Java (javac against Debian's jars, into build/java).
NODE_CLIENT_STAMP  := clients/node/node_modules/.voxgate-installed
GO_CLIENT          := build/go/bin/voxgate-go
GO_CLIENT_INPUTS   := $(shell find clients/go -type f) clients/service_config.json $(PROTOS)
JAVA_CLIENT        := build/java/bin/voxgate-java
JAVA_CLIENT_INPUTS := $(shell find clients/java -type f) clients/service_config.json $(PROTOS)

.PHONY: help setup proto proto-check lint fmt test test-python test-fast run bench bench-full soak chart image clean clients clients-toolchain test-clients prometheus-toolchain

help: ## list the targets (the default)
	@echo 'Usage: make <target> [PYTHON=python3] [VENV=.venv] [INSTALLER=uv|pip] [PYTEST_ARGS=...] [RUN_ARGS=...] [BENCH_ARGS=...] [SOAK_ARGS=...] [IMAGE=...]'
	@echo
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_-]+:[^#]*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(DEV_STAMP) $(NPM_STAMP) ## create the venv (voxgate + dev tools) and install buf (npm ci); INSTALLER=pip to install with pip instead of uv

$(VENV)/pyvenv.cfg:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(PYTHON) is $$($(PYTHON) --version 2>&1); voxgate needs Python 3.11+ (make PYTHON=python3.11 ...)" >&2; exit 1; }
	@echo "==> creating the virtual environment $(VENV) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)

# install_into_venv(what, pip arguments): one install with the chosen installer, saying what it does.
ifeq ($(INSTALLER),uv)
UV_EXE := $(if $(UV),$(UV),$(BIN)/uv)
INSTALL_DEPS := $(if $(UV),,$(BIN)/uv)
define install_into_venv
	@echo "==> installing $(1) into $(VENV) with $$($(UV_EXE) --version) (about 15 s on a fresh machine; INSTALLER=pip for pip)"
	$(PY) tools/uv_pip.py $(UV_EXE) install $(2)
endef
else ifeq ($(INSTALLER),pip)
INSTALL_DEPS :=
define install_into_venv
	@echo "==> installing $(1) into $(VENV) with pip (1-2 min on a fresh machine; the default INSTALLER=uv is faster)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on $(2)
endef
else
$(error INSTALLER must be uv or pip, not '$(INSTALLER)')
endif

$(BIN)/uv: | $(VENV)/pyvenv.cfg
	@echo "==> installing uv into $(VENV) with pip (no uv on PATH)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar off 'uv>=0.9,<1'

# The dev install covers the runtime too, so it stamps both.
$(RUNTIME_STAMP): pyproject.toml | $(VENV)/pyvenv.cfg $(INSTALL_DEPS)
	$(call install_into_venv,voxgate and the embedded upstream's audio stack (the demo extra; no dev tools),-e '.[demo]')
	@touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/pyvenv.cfg $(INSTALL_DEPS)
	$(call install_into_venv,voxgate and its dev tools (tests, linters, code generators),-e '.[dev]')
	@touch $(RUNTIME_STAMP) $@

# --ignore-scripts: the buf package's postinstall only swaps its JS launcher for the native binary.
$(NPM_STAMP): package.json package-lock.json
	@echo "==> installing buf (the protobuf linter) with npm ci"
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

proto: $(DEV_STAMP) ## regenerate Python code + stubs from protos/ into server/ (commit the result)
	@# Removing first, so code of a deleted or renamed proto does not linger.
	@find server -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' -o -name '*_pb2_grpc.pyi' \
		| xargs -r rm -f
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m grpc_tools.protoc -I protos \
		--python_out=server --pyi_out=server --grpc_python_out=server --mypy_grpc_out=quiet:server \
		$(PROTOS)
	@for f in $(GEN_INITS); do test -e "$$f" || { echo "creating $$f"; : > "$$f"; }; done

proto-check: proto ## fail if the committed generated code differs from `make proto`'s output
	@if [ -n "$$(git status --porcelain --untracked-files=all -- $(GENERATED) $(GEN_INITS) ':(glob)server/**/*_pb2*')" ]; then \
		echo 'error: generated code is stale or not committed; run `make proto` and commit:' >&2; \
		git status --short --untracked-files=all -- $(GENERATED) $(GEN_INITS) ':(glob)server/**/*_pb2*' >&2; \
		git --no-pager diff --stat -- $(GENERATED) >&2; \
		exit 1; \
	fi
	@echo 'generated code is up to date'

lint: setup ## buf lint + buf format check, ruff check, ruff format --check, mypy --strict
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

fmt: setup ## format and autofix: ruff format, ruff check --fix, buf format -w
	$(BIN)/ruff format
	$(BIN)/ruff check --fix
	$(BUF) format -w

test: setup clients prometheus-toolchain ## the whole suite, Node, Go and Java clients included (see `clients`; PYTEST_ARGS='-k pool -x' to narrow)
	$(PY) -m pytest $(PYTEST_ARGS)

test-python: $(DEV_STAMP) prometheus-toolchain ## the Python suite alone, no Go, Node or Java needed: all but the clients' tests
	$(PY) -m pytest -m 'not clients' $(PYTEST_ARGS)

test-fast: $(DEV_STAMP) prometheus-toolchain ## the quick subset (under ~30 s): -m 'not slow and not clients'
	$(PY) -m pytest -m 'not slow and not clients' $(PYTEST_ARGS)

clients: $(NODE_CLIENT_STAMP) $(GO_CLIENT) $(JAVA_CLIENT) ## build the Node, Go and Java clients (apt-installs their Debian toolchains if missing, saying which)

clients-toolchain:
	@clients/go/install-toolchain.sh
	@clients/java/install-toolchain.sh

# prometheus + promtool (Debian's package) for the alert tests and the dashboard/alert queries
# against a real Prometheus; returns at once when both are on PATH.
prometheus-toolchain:
	@tools/install-prometheus.sh

# --ignore-scripts: protobufjs's postinstall only prints a warning about version ranges.
$(NODE_CLIENT_STAMP): clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(GO_CLIENT): $(GO_CLIENT_INPUTS) | clients-toolchain
	clients/go/build.sh build/go

$(JAVA_CLIENT): $(JAVA_CLIENT_INPUTS) | clients-toolchain
	clients/java/build.sh build/java

test-clients: setup clients ## run the four CLIs (Python, Node, Go, Java) through the conformance table, the retry tests and grpcurl against a real voxgate
	$(PY) -m pytest $(PYTEST_ARGS) tests/integration/clients

run: $(RUNTIME_STAMP) ## run the server: voxgate serve (RUN_ARGS='--listen [::]:50051' to pass flags)
	$(BIN)/voxgate serve $(RUN_ARGS)

bench: setup ## the short benchmarks (< 3 min), ratios side by side: python -m bench (BENCH_ARGS=...)
	$(PY) -m bench $(BENCH_ARGS)

bench-full: setup ## the whole sweep (~11 min): results + plots into docs/bench/, then python -m bench.report refreshes docs
	$(PY) -m bench --full $(BENCH_ARGS)
	$(PY) -m bench.report docs/bench/speech.json docs/bench --docs docs/benchmarks.md --docs README.md

soak: setup ## requests under random faults (~1 %), then the books; CI runs it (SOAK_ARGS='--requests 100000' for a long one)
	$(PY) -m bench.soak $(SOAK_ARGS)

chart: setup prometheus-toolchain ## helm/voxgate: strict lint, render several value sets, validate against Kubernetes 1.27 + 1.37 schemas
	$(PY) -m pytest -q tests/chart

image: ## build the container image voxgate:<version> (IMAGE=..., CONTAINER=podman; needs a running engine)
	$(CONTAINER) build -t $(IMAGE) .

clean: ## remove the venv, node_modules, caches and build output
	rm -rf $(VENV) node_modules clients/node/node_modules build dist .mypy_cache .ruff_cache .pytest_cache
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf
