# Quick start: `make demo` (set up, then run the demo) and `make test` (set up, then run the tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint data clean browser

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The local CPU wheel first, so nothing pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The references the tests compare FID's InceptionV3 and LPIPS against. Both declare
	# torchvision (a CUDA torch), so no dependencies: the tests import their modules from the files.
	$(BIN)/python -m pip install --quiet --no-deps torch-fidelity==0.4.0 lpips==0.1.4
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ldmkit demo --out runs/demo

# Headless Chromium and its driver for the web page's browser test (Debian packages; as root
# with apt only; elsewhere that test skips and says why).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) || \
		echo "chromium not installed: the browser test will skip"; }

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks experiments scripts
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The same checks without the tests marked slow (trainings, the demo, compiles): for quick edits.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments scripts
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments scripts
	$(BIN)/ruff format --check src tests benchmarks experiments scripts
	$(BIN)/lint-imports

data: $(STAMP)
	$(BIN)/ldmkit data prepare fashion-mnist
	$(BIN)/ldmkit data prepare emoji

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
