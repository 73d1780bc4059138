# Everything the project needs is installed by these targets: a venv from PyPI, the control-plane
# binaries built from Go modules (cached in ~/.cache/kubectl-emqx), openssl from Debian if missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export GOTOOLCHAIN := local

.PHONY: deps venv build lint unit test demo demo-down clean

deps:
	@command -v openssl >/dev/null || (apt-get update -qq && apt-get install -y -qq openssl)
	@command -v go >/dev/null || (echo "Go >= 1.26 is required to build the sandbox's control plane" >&2; exit 1)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		(echo "Python >= 3.11 is required ($(PYTHON) is older)" >&2; exit 1)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: deps $(VENV)/.installed

build: venv
	$(PY) -m sandbox build

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -q tests/unit

test: build lint
	$(PY) -m pytest -q --durations=15

# The krew plugin archive (dist/kubectl-emqx_v<version>.tar.gz) and its manifest dist/emqx.yaml (README "Install").
.PHONY: plugin
plugin: venv
	$(PY) -m dist_tools.build_plugin

# Re-running it keeps the sandbox, its operator and the demo cluster (create only when missing).
# `sandbox up` builds only what the sandbox runs; `make build` adds the test tools (krew, helm).
demo: venv
	$(PY) -m sandbox up --operator
	eval "$$($(PY) -m sandbox env)" && \
		{ kubectl emqx status demo >/dev/null 2>&1 || kubectl emqx create demo --wait; } && \
		kubectl emqx status demo
	@echo
	@echo 'Point your shell at the sandbox:  eval "$$($(PY) -m sandbox env)"'
	@echo 'Tear it down:                     make demo-down'

demo-down: venv
	$(PY) -m sandbox down

clean: demo-down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
