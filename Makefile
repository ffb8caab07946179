# The two commands of the README:
#   make demo   set up, then pretrain + evaluate + export on Fashion-MNIST (~11 min, 2 CPU cores)
#   make test   set up, then lint and run the whole test suite (what CI runs)
PYTHON ?= python3

.PHONY: setup demo test lint test-fast test-slow

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

demo: setup
	$(PYTHON) -m siameseim_tf.cli demo --output runs/demo

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test-fast:
	$(PYTHON) -m pytest -q -m "not slow" --timeout 900

test-slow:
	$(PYTHON) -m pytest -q -m slow --timeout 1800

test: setup lint test-fast test-slow
