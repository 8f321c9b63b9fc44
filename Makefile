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

.PHONY: help install engine bench-tools lock reproduce outputs test unit notebooks bench lab lab-copies lab-reset clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The pinned versions the committed outputs were made with, then the kit itself (no deps).
# The stamp is named by the contents of pyproject.toml and requirements-lock.txt (not their
# times): a checkout, pull or touch that leaves them as they were installs nothing again.
INSTALL_KEY := $(shell cat pyproject.toml requirements-lock.txt 2>/dev/null | $(PYTHON) -c \
  "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])")
INSTALLED := $(BIN)/.installed-$(INSTALL_KEY)

$(INSTALLED):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lock.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(BIN)/.installed $(BIN)/.installed-*
	touch $@

install: $(INSTALLED)  ## create .venv: pinned dependencies (requirements-lock.txt) and the kit

# The serving engine (vLLM) in .venv, for real-engine sweeps and tests (profiling.vllm_server).
# ENGINE=cpu (default without nvidia-smi): vLLM's CPU build with every package pinned in
# engine-lock.txt, installed --no-deps so the kit's pins stay and nothing unused comes along
# (see that file's header). ENGINE=gpu (default with nvidia-smi): the regular CUDA build,
# $(VLLM_GPU_SPEC), resolved by pip over the kit's pins (not locked yet).
ENGINE ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
VLLM_GPU_SPEC ?= vllm
$(BIN)/.engine-$(ENGINE): $(INSTALLED) engine-lock.txt
ifeq ($(ENGINE),cpu)
	$(BIN)/python -m pip install -q --no-deps -r engine-lock.txt
else
	$(BIN)/python -m pip install -q "$(VLLM_GPU_SPEC)"
endif
	$(BIN)/python -c "import vllm, transformers; print('vLLM', vllm.__version__, 'ready in $(VENV)')"
	touch $@

engine: $(BIN)/.engine-$(ENGINE)  ## install the serving engine (vLLM; CPU build unless nvidia-smi is found) into .venv

# Benchmarking tools (GuideLLM, inference-perf) whose output `routerwise.data.reports` reads, in
# their own venv: inference-perf needs Python >= 3.12 and their pins (bench-lock.txt) are not the kit's.
BENCH_PYTHON ?= python3.12
BENCH_VENV ?= .bench-venv
$(BENCH_VENV)/.installed: bench-lock.txt
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r bench-lock.txt
	$(BENCH_VENV)/bin/guidellm --version && $(BENCH_VENV)/bin/inference-perf --help > /dev/null
	touch $@

bench-tools: $(BENCH_VENV)/.installed  ## install GuideLLM and inference-perf (bench-lock.txt) into .bench-venv (Python >= 3.12)

lock:  ## re-resolve requirements-lock.txt from pyproject.toml in a scratch venv
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install -q --upgrade pip
	.cache/lock-venv/bin/python -m pip install -q ".[paper,profiling,test,live]"
	{ echo "# Pinned versions for reproducing the committed outputs (make install). Regenerate: make lock"; \
	  echo "# Resolved with Python $$(.cache/lock-venv/bin/python -c 'import platform; print(platform.python_version())') on $$(uname -m)"; \
	  .cache/lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^routerwise'; } > requirements-lock.txt.tmp
	mv requirements-lock.txt.tmp requirements-lock.txt

# Notebooks run at once by `make reproduce` (each in its own process; same outputs as one at a time).
JOBS ?= 2
# More reproduce options, e.g. REPRODUCE_ARGS="-p mode simulated" (notebook 07 off a real engine).
REPRODUCE_ARGS ?=

reproduce: install  ## the main job: run every notebook into results/ (summary.md: each one's wall time)
	$(BIN)/python -m routerwise.paper.reproduce --out results --jobs $(JOBS) $(REPRODUCE_ARGS)

outputs: install  ## re-run every notebook and store its outputs as the committed ones (nbval)
	rm -rf .cache/outputs
	$(BIN)/python -m routerwise reproduce --out .cache/outputs
	$(BIN)/python -c "from routerwise.paper.reproduce import store_outputs; store_outputs('.cache/outputs')"

test: unit notebooks  ## unit tests, notebook runs with small parameters, nbval of committed outputs

# Test processes for `make unit` and `make notebooks` (pytest-xdist; 0 runs them in one process).
# --dist loadscope keeps a module's tests, and a notebook's cells, in one process, in order.
# Tests that start a real engine and time it (marker `alone`) then run with nothing beside
# them; exit status 5 (none collected: all deselected) is not a failure there.
TEST_WORKERS ?= 2

unit: install  ## unit and notebook-parameter tests: TEST_WORKERS at once, then the real-engine ones alone
	ROUTERWISE_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not alone"
	ROUTERWISE_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -m alone || [ $$? -eq 5 ]

notebooks: install  ## nbval: re-run the committed notebooks and compare their outputs
	rm -rf .cache/nbval-results  # a fresh folder: no "replaced <figure>" lines from the last run
	ROUTERWISE_CACHE_DIR=$(TEST_CACHE) ROUTERWISE_RESULTS_DIR=$(CURDIR)/.cache/nbval-results ROUTERWISE_PROGRESS=off \
	  $(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
	  --nbval-current-env -p no:cacheprovider -q -n $(TEST_WORKERS) --dist loadscope

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
