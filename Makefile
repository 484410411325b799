VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.policylink-installed

# LeRobot 0.6.1 on Python >= 3.12, apart from `.venv` (its torch pin differs): see
# scripts/setup_lerobot_venv.sh. The set-up rebuilds a venv of another Python or LeRobot.
LEROBOT_VENV ?= .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.policylink-installed

# The robot's side on Python 3.10 (Ubuntu 22.04, JetPack 6): policylink[client,openpi] and no
# torch. Its tests: wire formats, engines and links, the edge import contract, the OpenPI client;
# the servers they need run on the main venv's interpreter, as a robot's run on another machine.
PY310_VENV ?= .venv-py310
CLIENT_TESTS := tests/wire tests/client tests/test_edge_imports.py tests/openpi
# scripts/setup_client_venv.sh exits with this when the machine has no Python 3.10.
NO_PYTHON310 := 3

.PHONY: setup demo test format bench clean setup-lerobot test-lerobot setup-py310 test-py310

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

# The set-up script keeps its own stamp: a missing interpreter must reach test-py310 as a status.
setup-py310:
	bash scripts/setup_client_venv.sh $(PY310_VENV)

# A machine without Python 3.10 skips, and says so; under CI=true the set-up fails instead.
PY310_PYTEST = POLICYLINK_SERVER_PYTHON=$(abspath $(BIN)/python) $(PY310_VENV)/bin/pytest
test-py310: $(STAMP)
	@status=0; bash scripts/setup_client_venv.sh $(PY310_VENV) || status=$$?; \
	if [ $$status -eq $(NO_PYTHON310) ]; then \
		echo "test-py310: SKIPPED (no Python 3.10 here): the robot side is untested on 3.10"; \
		exit 0; \
	fi; \
	[ $$status -eq 0 ] || exit $$status; \
	echo "$(PY310_PYTEST) $(CLIENT_TESTS)"; \
	$(PY310_PYTEST) $(CLIENT_TESTS)

demo: $(STAMP)
	$(BIN)/policylink demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-py310

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(PY310_VENV) build .pytest_cache .ruff_cache
