# Two entry points for a newcomer: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE := src/sardespeckle/data/sample_s1_lely_amplitude.tif
OUT := demo-output

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	mkdir -p $(OUT)
	$(BIN)/sardespeckle run $(SAMPLE) -o $(OUT)/lely_despeckled.tif --looks 1 \
		--preview $(OUT)/lely_noisy_vs_despeckled.png --overwrite
	@echo "Open $(OUT)/lely_noisy_vs_despeckled.png (noisy | despeckled)"

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_filters.py
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(OUT) .pytest_cache
