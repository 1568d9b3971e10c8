# misrep: two commands do everything from a fresh clone.
#   make run    the main job (Shapes3D shared/exclusive, profile=quick) into runs/
#   make test   export check + library notebook tests + pytest (papermill smoke runs)
# Both create or reuse the virtual environment in .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.misrep-installed
PROFILE ?= quick
export PATH := $(abspath $(BIN)):$(PATH)
export MPLBACKEND := Agg

.PHONY: run test test-slow venv check-env export-check nbtest pytest docs bench-bmi paper-check gpu-check clean-venv help

venv: $(STAMP) ## create or update .venv (checks Python, venv and disk space first)

# An old Python, no venv module or a full disk stops here with a message (tools/check_env), not a traceback.
CHECK_ENV = @command -v $(PYTHON) >/dev/null 2>&1 || { echo "misrep: $(PYTHON) not found: install Python >= 3.9 or run make PYTHON=/path/to/python3"; exit 1; }; \
	$(PYTHON) tools/check_env --venv $(VENV)

check-env: ## check that this machine can build .venv (Python >= 3.9, venv module, disk space)
	$(CHECK_ENV)

$(STAMP): setup.py settings.ini
	$(CHECK_ENV)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (misrep)"
	@touch $@

# Experiments run through `misrep run` (misrep/cli.py): live progress, run folder named from the settings
# (runs/{experiment}__{model}__{dataset}__{profile}__seed{seed}; OUT=DIR for another), resume by running it again.
# ARGS passes more parameters: make run-dim ARGS="-p dataset mnist -p data_root ../shared/data".
run: $(STAMP) ## the main job: Shapes3D shared/exclusive (misrep run shapes3d), PROFILE=quick, OUT=DIR, ARGS='-p name value'
	$(BIN)/misrep run shapes3d --profile $(PROFILE) $(if $(OUT),--out $(OUT)) $(ARGS)

run-%: $(STAMP) ## run-EXPERIMENT: misrep run EXPERIMENT (misrep list names them); PROFILE=, OUT=DIR, ARGS='-p name value'
	$(BIN)/misrep run $* $(if $(filter command line environment,$(origin PROFILE)),--profile $(PROFILE)) \
	    $(if $(OUT),--out $(OUT)) $(ARGS)

# The library notebooks' tests run inside pytest (tests/test_exports.py runs every library notebook's test cells against
# the exported module, in fresh interpreters), so `make test` does not run them a second time through nbdev_test.
test: $(STAMP) export-check pytest ## the whole test suite (what CI runs): export-check, pytest (library notebooks' tests included)

export-check: $(STAMP) ## nbdev_export, then fail if misrep/ changed (the package must equal the notebooks)
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- misrep)" ]; then \
	  echo "nbdev_export changed misrep/: the package differs from the notebooks:"; \
	  git status --porcelain -- misrep; git --no-pager diff --stat -- misrep; exit 1; \
	else echo "export-check: misrep/ matches nbs/"; fi

# Two notebooks at once on two cores: one torch thread each, or the threads spin against each other.
nbtest: $(STAMP) ## nbdev_test the library notebooks (nbs/0*, 1*, 2*; #| slow cells skipped)
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --path nbs --skip_file_re '^3[0-9]' --n_workers 2 --do_print

# Two workers, one torch thread each: a test file runs whole on one worker (its fixtures built once), except the
# library-notebook checks of tests/test_exports.py: one class per notebook, spread over both (--dist loadscope).
pytest: $(STAMP) ## pytest tests/ on 2 workers: library notebooks' tests against the exports, experiment notebooks (smoke)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -q -rs -n 2 --dist loadscope --durations=15

# Library notebooks are executed for their pages (cached in _docs/.cache until they or misrep/ change);
# experiment notebooks are shown as executed in results/<name>/. DOCS_EXECUTE=0: library notebooks as stored.
DOCS_EXECUTE ?= 1
docs: $(STAMP) ## static HTML of every notebook and an index into _docs/ (nbconvert); DOCS_EXECUTE=0 runs nothing
	OMP_NUM_THREADS=1 $(BIN)/python tools/docs/build_docs.py --out _docs $(if $(filter 0,$(DOCS_EXECUTE)),--no-execute)

bench-bmi: $(STAMP) ## BMI benchmark: builds .venv-bmi (BMI's own env), BMI's and misrep's estimators on the same samples -> results/bmi/ (BMI_SEEDS=0)
	tools/bmi/run.sh

test-slow: $(STAMP) ## the tests marked slow (paper profiles for 2 iterations, estimate_mi to convergence): tens of minutes on 2 cores
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m slow tests -q -rs -n 2 --dist loadscope

paper-check: $(STAMP) ## every experiment's paper profile, 2 iterations per stage, on the CPU (slow: pytest -m slow)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m slow tests/test_paper_profiles.py -q -rs

# On a GPU machine without .venv: python3 tools/gpu_check.py --mnist-root DIR (see results/gpu/README.md).
gpu-check: $(STAMP) ## one GPU, <10 min: full Shapes3D render, it/s of every paper profile, InfoGAN paper x 5 seeds -> results/gpu/ (DRY=1: CPU, tiny; MNIST_ROOT=DIR)
	$(BIN)/python tools/gpu_check.py $(if $(DRY),--dry --out runs/gpu_check_dry) $(if $(MNIST_ROOT),--mnist-root $(MNIST_ROOT))

clean-venv: ## delete .venv
	rm -rf $(VENV)

# `make help`: every target with its `## ` comment, in file order.
help: ## list every target with one line each
	@echo "misrep: \`make run\` (the main job) and \`make test\` (the whole test suite) do everything. All targets:"
	@awk '/^[a-zA-Z0-9][a-zA-Z0-9_%.-]*:([^=]|$$)/ { t = $$0; sub(/:.*/, "", t); \
	  d = "(no description: add a ## comment)"; if (match($$0, /## /)) d = substr($$0, RSTART + 3); \
	  printf "  make %-14s %s\n", t, d }' $(MAKEFILE_LIST)
