# Set-up and entry points. `make demo` and `make test` are all a fresh machine needs: they create
# .venv, install the package (building the C++ core) with the pins in requirements/, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
# Reinstall whenever a source of the package changes.
SOURCES := $(shell find csrc python -type f -not -name '*.pyc' 2>/dev/null) CMakeLists.txt pyproject.toml $(CONSTRAINTS)

.PHONY: demo compiler-demo test test-cpp lint fuzz bench docs clean chromium

# The main job: segmentation from raw images to a bit-exact binary (out/demo, about 6 minutes on 2 cores).
# TASK=keypoint runs the car keypoint task the same way (out/demo_keypoint), TASK=fcos the FCOS detector
# (out/demo_fcos), TASK=motr the MOTR tracker (out/demo_motr).
TASK ?= segmentation
demo: $(VENV)/.installed
	$(PY) tools/demo.py --task $(TASK) --force

# The compiler alone on the bundled HBIR example (out/compiler_demo, seconds).
compiler-demo: $(VENV)/.installed
	$(PY) tools/compiler_demo.py --force

test: $(VENV)/.installed chromium
	$(PY) -m pytest -q tests

# The HTML perf report is checked in headless Chromium. Installed only as root on Debian; elsewhere
# that test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && \
	  command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq chromium) || true; }

# The C++ unit tests alone, through ctest (they also run inside `make test`).
test-cpp: $(VENV)/.installed
	cmake -S . -B build/cpp-tests -G Ninja -DHBDK_BUILD_PYTHON=OFF -DHBDK_BUILD_TESTS=ON
	cmake --build build/cpp-tests
	ctest --test-dir build/cpp-tests --output-on-failure

lint: $(VENV)/.installed
	$(PY) -m ruff check python tools tests benchmarks

# Coverage-guided fuzzing of the .hbir parser (installs clang); FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 120
fuzz:
	bash tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

bench: $(VENV)/.installed
	$(PY) -m pytest benchmarks --benchmark-only

# Regenerate the documents derived from the code (a test fails when they are stale).
docs: $(VENV)/.installed
	$(PY) -m hbdk_sim.docgen --write

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# --no-build-isolation builds every sdist in the tree (cityscapesscripts pulls the `typing` sdist) with
# the venv's own setuptools, which needs `wheel`: both are installed first.
$(VENV)/.installed: $(VENV)/bin/python $(SOURCES)
	$(PIP) install -c $(CONSTRAINTS) "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake setuptools wheel
	$(PIP) install --no-build-isolation -c $(CONSTRAINTS) ".[test]"
	touch $@

clean:
	rm -rf build $(VENV)
