# Two set-up commands: `make demo` (main job) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo two-step test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,envs,plots,stats]"
	touch $(STAMP)

# QMIX on Level-Based Foraging 8x8-2p-2f-coop: live progress line, learning curve at the end.
demo: $(STAMP)
	$(BIN)/qmix train qmix lbf_8x8_2p_2f_coop

# The paper's two-step game with QMIX and VDN: prints the learned Q_tot tables.
two-step: $(STAMP)
	$(BIN)/qmix train qmix two_step
	$(BIN)/qmix train vdn two_step

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Two pytest workers (pytest-xdist), one per core of a 2-core machine; a test goes to whichever
# worker is free; the 20 slowest are listed at the end (the suite must stay under 20 minutes).
# `.venv/bin/pytest tests/FILE.py` runs a part in one process.
test: lint
	QMIX_REQUIRE_ENVS=1 $(BIN)/python -m pytest -n 2 --dist worksteal --durations=20

bench: $(STAMP)
	$(BIN)/python benchmarks/two_step_time.py
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
