# Targets the README uses. Everything runs from the project's own .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MLRUNS_DIR ?= $(CURDIR)/mlruns
MLFLOW_TRACKING_URI ?= file://$(abspath $(MLRUNS_DIR))
PORT ?= 5001
# `make train REGISTER=hvs ALIAS=champion`: also register the run's model and point the alias
# at it, for MODEL_URI=models:/hvs@champion (docs/operations.md)
REGISTER ?=
ALIAS ?=
# Exported, and used in recipes only as "$$NAME": a value is never pasted into a command.
export MLFLOW_TRACKING_URI PORT BEST_MLFLOW_RUN_ID MODEL_URI REGISTER ALIAS

.PHONY: install train serve run mlflow-ui test test-python test-container lint format clean

install: $(VENV)/.installed ## create .venv and install everything (idempotent)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check --quiet --no-deps -e .
	@touch $@

train: install ## train the default model into $(MLRUNS_DIR) (REGISTER=, ALIAS=: register it); the run id is the last line
	@$(PY) -m src.training --mlruns-dir "$(MLRUNS_DIR)" $${REGISTER:+--register "$$REGISTER"} $${ALIAS:+--alias "$$ALIAS"}

serve: install ## nginx + gunicorn on $(PORT) (gunicorn alone without nginx: HVS_FRONT), serving BEST_MLFLOW_RUN_ID or MODEL_URI from $(MLFLOW_TRACKING_URI)
	@test -n "$$BEST_MLFLOW_RUN_ID$$MODEL_URI" || { echo "neither BEST_MLFLOW_RUN_ID nor MODEL_URI is set: run 'make train' and pass the id it prints, or use 'make run'" >&2; exit 2; }
	exec $(PY) -m src.api.front

mlflow-ui: install ## browse the runs in $(MLRUNS_DIR) with MLflow's UI on :5000
	MLFLOW_ALLOW_FILE_STORE=true $(VENV)/bin/mlflow ui --backend-store-uri "$(MLRUNS_DIR)"

run: install ## train a default model if none exists, then serve the newest run
	@run_id=$$($(PY) -m src.training.runs latest --mlruns-dir "$(MLRUNS_DIR)") || exit 1; \
	if [ -z "$$run_id" ]; then \
	  echo "no trained model in $(MLRUNS_DIR): training the default one without the leave-one-out runs (a few minutes; make train for all)" >&2; \
	  run_id=$$($(PY) -m src.training --no-holdout --mlruns-dir "$(MLRUNS_DIR)" | tail -n 1) || exit 1; \
	fi; \
	echo "serving run $$run_id on port $(PORT)" >&2; \
	BEST_MLFLOW_RUN_ID=$$run_id exec $(PY) -m src.api.front

test: test-python test-container ## the whole test suite, as CI runs it

test-python: install ## unit and integration tests (real gunicorn and nginx, redis-server on loopback)
	@bash tools/test_deps.sh
	$(PY) -m pytest

test-container: install ## build and run the image: docker if an engine answers, else buildah + podman (as root, apt-installs them)
	bash tests/container/run_container_tests.sh

lint: install ## ruff and hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests bench tools
	$(VENV)/bin/hadolint Dockerfile

format: install
	$(VENV)/bin/ruff format src tests bench tools
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
