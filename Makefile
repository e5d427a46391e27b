# gnnrec: `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install demo test test-slow test-all bench lint format clean notebooks strip-notebooks

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name gnnrec-venv --display-name "gnnrec (.venv)"
	@touch $@

install: $(VENV)/.installed  ## create .venv and install gnnrec with its test tools

demo: install  ## ID LightGCN vs text-enhanced LightGCN, Amazon Books+CDs -> Movies
	$(BIN)/python -m gnnrec.demo

test: install  ## the test suite without slow tests
	$(BIN)/python -m pytest -q

test-slow: install  ## only the slow tests (long end-to-end runs)
	$(BIN)/python -m pytest -q -m slow

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: install  ## timing benchmarks, as ratios against references run alongside
	$(BIN)/python -m benchmarks.bench_lightgcn
	$(BIN)/python -m benchmarks.bench_eval
	$(BIN)/python -m benchmarks.bench_encode
	$(BIN)/python -m benchmarks.bench_rgcn
	$(BIN)/python -m benchmarks.bench_startup
	$(BIN)/python -m benchmarks.bench_gfcf_svd --gram-k 1024
	$(BIN)/python -m benchmarks.bench_text_step --shared 1024

lint: install
	$(BIN)/ruff check gnnrec tests benchmarks experiments notebooks
	$(BIN)/ruff format --check gnnrec tests benchmarks experiments notebooks

format: install
	$(BIN)/ruff format gnnrec tests benchmarks experiments notebooks
	$(BIN)/ruff check --fix gnnrec tests benchmarks experiments notebooks

NOTEBOOKS := notebooks/01_data_overview.ipynb notebooks/02_ablation.ipynb
notebooks: install  ## execute the notebooks into outputs/notebooks with papermill (the full study; FAST=1: the quick test mode)
	@mkdir -p outputs/notebooks
	for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb .ipynb); \
	  $(BIN)/papermill -k gnnrec-venv --cwd notebooks $$nb outputs/notebooks/$$name.ipynb \
	    -p FAST $(if $(FAST),True,False) -p OUTPUT_DIR $(CURDIR)/outputs/notebooks/$$name || exit 1; \
	done

strip-notebooks: install  ## remove outputs and execution counts from the committed notebooks (nbstripout)
	$(BIN)/nbstripout notebooks/*.ipynb

clean:
	rm -rf .cache outputs multirun .pytest_cache
