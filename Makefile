# The two set-up commands: `make demo` and `make test`. Each builds .venv on its own first:
# torch==2.13.0 (the CPU build) before anything else, then this project and its dev tools.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The whole class flow offline: a fresh database, a demo class with two students and an instructor,
# jobs queued through the service and run by the scheduler in worker processes, then the report,
# plots and predictions (embedded MiniLM pruned to 3 of 6 layers; real chat lines from chatterbot-corpus).
demo: $(STAMP)
	$(VENV)/bin/tinytutor demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q -ra

bench: $(STAMP)
	$(PY) benchmarks/bench_trainer.py
	$(PY) benchmarks/bench_serving.py
	$(PY) benchmarks/bench_distill.py
	$(PY) benchmarks/bench_queue.py

clean:
	rm -rf $(VENV) runs data tinytutor-data .pytest_cache .ruff_cache
