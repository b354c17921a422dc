# The two set-up commands: `make demo` and `make test`. Each builds .venv on its own first:
# torch==2.13.0 (the CPU build) before anything else, then this project and its dev tools.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install fonts browser demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

# Plots label classes in any script: Chinese, Japanese and Korean labels need a font DejaVu lacks
# (Debian's fonts-noto-cjk, installed here when missing and we may; a quick check otherwise).
fonts:
	@fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing fonts-noto-cjk (CJK labels in plots)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null; \
	  else echo "note: install a CJK font (Debian: sudo apt-get install fonts-noto-cjk) or CJK labels draw as boxes"; fi; }

# The dashboard's browser tests drive a real headless Chromium through its driver: Debian's chromium and
# chromium-driver, installed here when missing and we may (Selenium is given the system driver and
# downloads nothing). Without them the browser tests are skipped, saying why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (the dashboard's browser tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "note: install chromium and chromium-driver (Debian) to run the dashboard's browser tests"; fi; }

install: fonts $(STAMP)

# The whole class flow offline: a fresh database, a demo class with two students and an instructor,
# jobs queued through the service and run by the scheduler in worker processes, then the report,
# plots and predictions (embedded MiniLM pruned to 3 of 6 layers; real chat lines from chatterbot-corpus).
demo: install
	$(VENV)/bin/tinytutor demo

lint: install
	$(VENV)/bin/ruff check .

test: install browser lint
	$(PY) -m pytest -q -ra

bench: install
	$(PY) benchmarks/bench_trainer.py
	$(PY) benchmarks/bench_serving.py
	$(PY) benchmarks/bench_quality.py
	$(PY) benchmarks/bench_long_texts.py
	$(PY) benchmarks/bench_queue.py
	$(PY) benchmarks/bench_door.py
	$(PY) benchmarks/bench_worker_start.py
	$(PY) benchmarks/bench_explain.py

clean:
	rm -rf $(VENV) runs data tinytutor-data .pytest_cache .ruff_cache
