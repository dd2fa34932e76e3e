# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Headless Chromium (Debian package) takes the app screenshots the tests check.
CHROMIUM := /usr/bin/chromium
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test test-all lint format clean fetch-test-data

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; pass PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch and torchvision first: pip takes the pinned CUDA build from local disk where it lies there.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c constraints.txt -e ".[cpu,dev,mauve]"
	touch $(STAMP)

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "error: the app tests need Debian's chromium: sudo apt-get install chromium"; exit 1; }
	apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(BIN)/distill run education --profile quick

# The one dataset the shared mirror lacks: radlabels' wheel from PyPI (a package registry), checksum-verified into the
# cache; a second run finds it there. Tests never touch the network themselves.
fetch-test-data: $(STAMP)
	$(BIN)/distill data fetch radlabels-synthetic

test: $(STAMP) $(CHROMIUM) fetch-test-data
	$(BIN)/python -m pytest -q

test-all: $(STAMP) $(CHROMIUM) fetch-test-data
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache
