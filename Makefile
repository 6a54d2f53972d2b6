# The two quick-start commands: `make app` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: app test lint setup browser clean bench-gpu

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The web app with the shipped default face checkpoint, on http://127.0.0.1:7860 (see README).
app: $(STAMP)
	$(BIN)/inpaint app

test: $(STAMP) browser lint
	$(BIN)/python -m pytest

# The linter and the formatter's check (settings in pyproject.toml): part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser test drives Debian's chromium (never a downloaded browser); installed when we can.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: the browser test is skipped without Debian's chromium (apt-get install chromium)"; fi; }

# The GPU check: environment, CUDA tests, GPU benchmarks and the suite, under 8 minutes, logs in
# $OUT or out/gpu-check/. No setup step: a GPU machine has its own torch (see benchmarks/gpu_check.sh).
bench-gpu:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) out
