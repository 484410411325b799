VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.policylink-installed

LEROBOT_VENV ?= .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.policylink-installed

.PHONY: setup demo test lint format bench clean setup-lerobot test-lerobot

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh $(VENV)
	touch $(STAMP)

setup-lerobot: $(LEROBOT_STAMP)

$(LEROBOT_STAMP): pyproject.toml scripts/setup_lerobot_venv.sh
	bash scripts/setup_lerobot_venv.sh $(LEROBOT_VENV)
	touch $(LEROBOT_STAMP)

test-lerobot: $(LEROBOT_STAMP)
	$(LEROBOT_VENV)/bin/pytest tests/lerobot

demo: $(STAMP)
	$(BIN)/policylink demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
