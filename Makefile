# Every entry point installs what it needs first, so a fresh clone only ever runs
# `make demo` or `make test`. torch is pinned through constraints.txt *before* the
# project so pip never reaches for a CUDA build on a CPU machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= out/demo

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/inr fit inr/assets/bunny_256.png --model hashgrid --seconds 30 -o $(DEMO)

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/bench_image.py

clean:
	rm -rf $(VENV) out
