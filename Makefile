# misrep: two commands do everything from a fresh clone.
#   make run    the main job (Shapes3D shared/exclusive, profile=quick) into runs/
#   make test   export check + library notebook tests + pytest (papermill smoke runs)
# Both create or reuse the virtual environment in .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.misrep-installed
RUNS   ?= runs
PROFILE ?= quick
export PATH := $(abspath $(BIN)):$(PATH)
export MPLBACKEND := Agg

.PHONY: run test venv export-check nbtest pytest clean-venv

venv: $(STAMP)

$(STAMP): setup.py settings.ini
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (misrep)"
	@touch $@

run: $(STAMP)
	@mkdir -p $(RUNS)/shapes3d_$(PROFILE)
	$(BIN)/papermill nbs/30_shapes3d.ipynb $(RUNS)/shapes3d_$(PROFILE)/30_shapes3d.ipynb \
	    -p profile $(PROFILE) -p out_dir $(RUNS)/shapes3d_$(PROFILE) --cwd .

test: $(STAMP) export-check nbtest pytest

export-check: $(STAMP)
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- misrep)" ]; then \
	  echo "nbdev_export changed misrep/: the package differs from the notebooks:"; \
	  git status --porcelain -- misrep; git --no-pager diff --stat -- misrep; exit 1; \
	else echo "export-check: misrep/ matches nbs/"; fi

# Two notebooks at once on two cores: one torch thread each, or the threads spin against each other.
nbtest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --path nbs --skip_file_re '^3[0-9]_' --n_workers 2 --do_print

pytest: $(STAMP)
	$(BIN)/python -m pytest tests -q -rs

clean-venv:
	rm -rf $(VENV)
