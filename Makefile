# resbench: `make demo` runs the quickstart sweep, `make test` the test suite.
# Both create .venv and install the project (with its dev extra) on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint clean help

help:
	@echo "make demo   - install if needed, then run the quickstart sweep (search_spaces/quickstart.yaml)"
	@echo "make test   - install if needed, then run the test suite"
	@echo "make lint   - ruff"
	@echo "make clean  - remove .venv, the local MLflow store, reports and Ray results"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "resbench needs Python >= 3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing resbench and its dependencies into $(VENV) (first run only) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c 'import bench, torch, ray, mlflow, optuna, timm' || { echo "install failed"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m launchers.sweep --space search_spaces/quickstart.yaml

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check bench launchers tests

clean:
	rm -rf $(VENV) mlflow/mlflow.db mlflow/mlflow.db-init.lock mlflow/artifacts reports .ray_results
