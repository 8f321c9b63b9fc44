# RouterWise kit: one front door for developer tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline data: a folder laid out like raw.githubusercontent.com (github/<owner>/<repo>/<commit>/...).
# ../shared/data is used when present; unset it (ROUTERWISE_DATA_MIRROR=) to download instead.
ROUTERWISE_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export ROUTERWISE_DATA_MIRROR
# One BLAS/OpenMP thread: fitted and simulated numbers then do not depend on the core count.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# Tests share one cache so the simulated profile grid is built once per run of `make test`.
TEST_CACHE := $(CURDIR)/.cache/test

.PHONY: help install engine lock reproduce outputs test unit notebooks bench lab lab-copies lab-reset clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The pinned versions the committed outputs were made with, then the kit itself (no deps).
$(BIN)/.installed: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(BIN)/.installed  ## create .venv: pinned dependencies (requirements-lock.txt) and the kit

# The serving engine (vLLM) in .venv, for real-engine sweeps and tests (profiling.vllm_server).
# ENGINE=cpu (default without nvidia-smi): vLLM's CPU build with every package pinned in
# engine-lock.txt, installed --no-deps so the kit's pins stay and nothing unused comes along
# (see that file's header). ENGINE=gpu (default with nvidia-smi): the regular CUDA build,
# $(VLLM_GPU_SPEC), resolved by pip over the kit's pins (not locked yet).
ENGINE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
VLLM_GPU_SPEC ?= vllm
$(BIN)/.engine-$(ENGINE): $(BIN)/.installed engine-lock.txt
ifeq ($(ENGINE),cpu)
	$(BIN)/python -m pip install -q --no-deps -r engine-lock.txt
else
	$(BIN)/python -m pip install -q "$(VLLM_GPU_SPEC)"
endif
	$(BIN)/python -c "import vllm, transformers; print('vLLM', vllm.__version__, 'ready in $(VENV)')"
	touch $@

engine: $(BIN)/.engine-$(ENGINE)  ## install the serving engine (vLLM; CPU build unless nvidia-smi is found) into .venv

lock:  ## re-resolve requirements-lock.txt from pyproject.toml in a scratch venv
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install -q --upgrade pip
	.cache/lock-venv/bin/python -m pip install -q ".[paper,profiling,test,live]"
	{ echo "# Pinned versions for reproducing the committed outputs (make install). Regenerate: make lock"; \
	  echo "# Resolved with Python $$(.cache/lock-venv/bin/python -c 'import platform; print(platform.python_version())') on $$(uname -m)"; \
	  .cache/lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^routerwise'; } > requirements-lock.txt.tmp
	mv requirements-lock.txt.tmp requirements-lock.txt

reproduce: install  ## the main job: run every notebook into results/ (summary.md: each one's wall time)
	$(BIN)/python -m routerwise.paper.reproduce --out results

outputs: install  ## re-run every notebook and store its outputs as the committed ones (nbval)
	rm -rf .cache/outputs
	$(BIN)/python -m routerwise reproduce --out .cache/outputs
	$(BIN)/python -c "from routerwise.paper.reproduce import store_outputs; store_outputs('.cache/outputs')"

test: unit notebooks  ## unit tests, notebook runs with small parameters, nbval of committed outputs

unit: install  ## unit and notebook-parameter tests only
	ROUTERWISE_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest

notebooks: install  ## nbval: re-run the committed notebooks and compare their outputs
	rm -rf .cache/nbval-results  # a fresh folder: no "replaced <figure>" lines from the last run
	ROUTERWISE_CACHE_DIR=$(TEST_CACHE) ROUTERWISE_RESULTS_DIR=$(CURDIR)/.cache/nbval-results ROUTERWISE_PROGRESS=off \
	  $(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
	  --nbval-current-env -p no:cacheprovider -q

bench: install  ## print the benchmarks: solvers, scale, mixed GPUs, sweeps, routing, plans, latency validation, simulator, step costs, predictor
	$(BIN)/python benchmarks/bench_solvers.py --quick
	$(BIN)/python benchmarks/bench_scale.py --sizes 4x4 6x8
	$(BIN)/python benchmarks/bench_mixed.py --quick
	$(BIN)/python benchmarks/bench_sweeps.py --synthetic
	$(BIN)/python benchmarks/bench_routing.py
	$(BIN)/python benchmarks/bench_plans.py
	$(BIN)/python benchmarks/bench_latency_validation.py
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_stepcost.py
	$(BIN)/python benchmarks/bench_predictor.py

# JupyterLab opens working copies in $(LAB_DIR)/ (git-ignored): its autosave then never rewrites
# the committed notebooks, whose stored outputs nbval compares against (`make notebooks`).
LAB_DIR ?= lab

lab: install lab-copies  ## open working copies of the notebooks (lab/, not committed) in JupyterLab
	$(BIN)/python -m pip install -q "jupyterlab>=4" "ipywidgets>=8.1"  # the lab extra (pyproject.toml)
	$(BIN)/jupyter lab $(LAB_DIR)

# Copies only the notebooks missing from $(LAB_DIR)/: an edited working copy is never replaced.
lab-copies:
	@mkdir -p $(LAB_DIR)
	@for nb in notebooks/*.ipynb; do \
	  [ -e "$(LAB_DIR)/$${nb##*/}" ] || { cp "$$nb" "$(LAB_DIR)/" && echo "copied $$nb to $(LAB_DIR)/"; }; \
	done

lab-reset:  ## refresh lab/ from notebooks/ (the old working copies move to lab/previous/)
	@mkdir -p $(LAB_DIR)/previous
	@for nb in $(LAB_DIR)/*.ipynb; do \
	  [ ! -e "$$nb" ] || { mv -f "$$nb" "$(LAB_DIR)/previous/" && echo "moved $$nb to $(LAB_DIR)/previous/"; }; \
	done
	@$(MAKE) --no-print-directory lab-copies LAB_DIR=$(LAB_DIR)

clean:  ## remove results and test caches (not the venv)
	rm -rf results .cache .pytest_cache
