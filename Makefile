# The README's two commands: `make demo` and `make test`.
# Both create .venv with the interpreter in $(PYTHON) (3.11 or newer) and install the package.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ddspcli-installed
DEMO_OUT ?= demo-out

.PHONY: venv test lint demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ddspcli needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ddspcli tests benchmarks

# pytest exits 5 when it collects no tests; make treats any non-zero exit as failure.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	$(BIN)/ddsp --version
	$(BIN)/ddsp info tests/data/speech_arctic_a0001.wav
	$(BIN)/ddsp models pull crepe-full
	$(BIN)/ddsp features tests/data/speech_arctic_a0001.wav --force \
		-o $(DEMO_OUT)/speech.features.csv --plot $(DEMO_OUT)/speech.features.png
	@echo "demo: wrote $(DEMO_OUT)/speech.features.csv and $(DEMO_OUT)/speech.features.png"

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache *.egg-info
