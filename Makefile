# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A local CPU build of torch is available at this exact version; an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test venv clean benchmarks

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/tlt-tracker demo --out demo_output

test: venv
	$(PY) -m pytest -q

benchmarks: venv
	$(PY) benchmarks/registration.py

clean:
	rm -rf $(VENV) demo_output
