# The two commands of README.md: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/dev.yml
N ?= 100000
PYTEST_ARGS ?=

.PHONY: install run test lint seed bench protos clean deploy-check

$(VENV)/.installed: setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "ERROR: $(PYTHON) not found (the project needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[protos,dev,test]'
	touch $@

install: $(VENV)/.installed protos

protos: $(VENV)/.installed
	@if [ -f protos/payment.proto ]; then $(PY) -m payment_provider.build_protos; fi
	@if [ -f protos/inventory.proto ]; then $(PY) -m inventory_grpc.build_protos; fi

run: install
	scripts/ensure-tools.sh fonts
	PYTHONWARNINGS=ignore $(PY) -m scripts.run_system --config $(CONFIG)

test: install
	scripts/ensure-services.sh
	scripts/ensure-tools.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

# Lints the Dockerfile (hadolint), YAML (yamllint) and the rendered k8s overlays (kubernetes-validate --strict).
deploy-check: install
	scripts/deploy_check.sh

seed: install
	PYTHONWARNINGS=ignore $(PY) -m scripts.seed --config $(CONFIG) --products $(N)

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var build *.egg-info
