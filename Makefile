# Set-up and the usual jobs. `make run` and `make test` create .venv on first use and reinstall
# only when setup.cfg, pyproject.toml or constraints.txt change (stamp files in .venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
DEPS   := setup.cfg pyproject.toml constraints.txt

.PHONY: run test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the main job draws plots, so the plot extra is part of the base install; inference runs on
# onnxruntime, so torch (the train extra: training, export, --engine torch, --device cuda) is not
$(VENV)/.installed: $(DEPS) | $(BIN)/python
	$(PIP) -e '.[plot]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test,dask,plot,train]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) -e '.[bench,vad-bench,plot,train]'
	touch $@

## run: the main job on the embedded defaults (sample audio in data/, model in models/)
run: $(VENV)/.installed
	$(BIN)/python -m pipeline run

## test: the whole suite, slow end-to-end tests included
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

## test-fast: skip the tests marked slow
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

## bench: throughput beside the peers (prints x real time and peak RSS)
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/vad.py   # needs the corpus (data/recipes/vad_corpus.py); says so if missing
	$(BIN)/python bench/vad_hour.py   # an hour of the real corpus's dev clips (data/recipes/real_corpus.py)

clean:
	rm -rf $(VENV) .pipeline-cache out build *.egg-info .pytest_cache
