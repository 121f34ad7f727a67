# The two commands a newcomer needs: `make demo` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml setup.py floodlight_trust/evidence/ima/_bulkhash.c floodlight_trust/evidence/_derwalk.c floodlight_trust/evidence/_tcblevels.c floodlight_trust/evidence/_frozen.c  # native modules are rebuilt when their source changes
	@scripts/ensure-cbuild.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

setup: $(STAMP)
	@scripts/ensure-jdk.sh
	@scripts/ensure-tpm.sh
	@scripts/ensure-postgres.sh

demo: setup
	$(BIN)/ftrust demo

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: setup
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy floodlight_trust policy_lang benchmarks

# dcap-qvl (the bench extra) is the reference verifier the SGX benchmark compares against.
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) java-bridge/build .pytest_cache .mypy_cache .ruff_cache
