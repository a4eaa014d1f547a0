# The README's two commands: `make demo` and `make test`.
# Both create .venv with the interpreter in $(PYTHON) (3.11 or newer) and install the package.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddspcli-installed
DEMO_OUT ?= demo-out

# `make demo` plays with the light install (`pip install ddspcli`: no TensorFlow) in its own venv;
# `make test` installs everything (the training extra and the test tools) into $(VENV).
DEMO_VENV ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.ddspcli-installed

.PHONY: venv test lint coverage demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ddspcli needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# ruff, then the layer contracts of pyproject.toml ([tool.importlinter]): imports point down.
lint: $(STAMP)
	$(BIN)/ruff check ddspcli tests benchmarks recipes
	$(BIN)/lint-imports --no-cache

# pytest exits 5 when it collects no tests; make treats any non-zero exit as failure.
# TEST_WORKERS: pytest-xdist processes (auto = one per CPU core); whole files go to one worker, so
# a file's module fixtures are built once (the shared tone model: once per run, see conftest).
TEST_WORKERS ?= auto
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=12 -n $(TEST_WORKERS) --dist loadfile

# Line coverage per module (the same suite, measured; see BENCHMARKS.md "Test suite").
coverage: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile \
		--cov=ddspcli --cov-report=term

# Offline after the install: the violin model and the CREPE tiny weights ship in the package.
DEMO_IN ?= examples/speech_198-209-0000.wav
$(DEMO_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ddspcli needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install --quiet -e .
	@touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	@mkdir -p $(DEMO_OUT)
	$(DEMO_VENV)/bin/ddsp --version
	$(DEMO_VENV)/bin/ddsp models list
	DDSP_OFFLINE=1 $(DEMO_VENV)/bin/ddsp transfer $(DEMO_IN) --model violin --octave 1 --force \
		-o $(DEMO_OUT)/speech.violin.wav --plot $(DEMO_OUT)/speech.violin.png
	@echo "demo: wrote $(abspath $(DEMO_OUT))/speech.violin.wav and $(abspath $(DEMO_OUT))/speech.violin.png"
	@echo "demo: input $(DEMO_IN) (LibriSpeech 198-209-0000, CC BY 4.0: see examples/README.md)"

clean:
	rm -rf $(VENV) $(DEMO_VENV) .venv-light $(DEMO_OUT) .pytest_cache .ruff_cache *.egg-info
