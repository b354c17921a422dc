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

# Train on real chat lines by topic (chatterbot-corpus) with the embedded MiniLM, pruned to 3 of 6 layers.
demo: $(STAMP)
	$(VENV)/bin/tinytutor example-data data/example-chat.csv
	$(VENV)/bin/tinytutor check data/example-chat.csv
	$(VENV)/bin/tinytutor train data/example-chat.csv
	@latest=$$(ls -td runs/example-chat-* | head -1); \
	  $(VENV)/bin/tinytutor predict $$latest "How do I write a for loop in Python?" "I feel so happy today" \
	    "Who wrote Hamlet?" "Are you a robot?"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -q -ra

bench: $(STAMP)
	$(PY) benchmarks/bench_trainer.py

clean:
	rm -rf $(VENV) runs data .pytest_cache .ruff_cache
