# Every entry point installs what it needs first, so a fresh clone only ever runs
# `make demo` or `make test`. torch is pinned through constraints.txt *before* the
# project so pip never reaches for a CUDA build on a CPU machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= out/demo
INR    := $(VENV)/bin/inr
CLIP   := inr/assets/bunny_320x180_32f.mp4

.PHONY: install browser demo test bench bench-all clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the bundled sample: encode -> decode -> report.
demo: install
	$(INR) encode $(CLIP) -o $(DEMO)/bunny.inr --model auto --bpp 0.2 --seconds 60
	$(INR) decode $(DEMO)/bunny.inr -o $(DEMO)/bunny_decoded.mp4
	$(INR) info $(DEMO)/bunny.inr
	$(INR) compare $(CLIP) --models auto --bpp 0.1,0.2,0.4 --seconds 45 --crf 23,28,33,38,43,48 -o $(DEMO)/report

# The browser test drives Debian's Chromium (Playwright's own browser download needs the
# internet). Installed when we are root with apt (CI); elsewhere the test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: the browser end-to-end test will be skipped"; fi; }

test: install browser
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/bench_image.py
	$(PY) bench/bench_video.py
	$(PY) bench/bench_export.py
	$(PY) bench/bench_decode.py

bench-all: bench
	$(PY) bench/bench_rd.py
	$(PY) bench/tables.py

clean:
	rm -rf $(VENV) out
