# caffe2tf — the two Quick start commands are `make demo` and `make test`.
# Each creates its own virtual environment (.venv) on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= out/demo

.PHONY: demo test test-fast fuzz install browser bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[app,dev]'
	touch $@

install: $(VENV)/.installed

# Debian's chromium for the browser tests (Playwright drives it; nothing downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not root: browser tests will be skipped"; fi; }

# Convert the bundled example, verify it layer by layer, segment a photo and evaluate.
demo: $(VENV)/.installed
	bash examples/demo.sh $(DEMO)

test: $(VENV)/.installed browser
	$(PY) -m pytest -q -ra

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -ra -m "not slow and not browser"

# The long fuzz hunt (>= 100,000 examples in all; CI runs the same fuzzers with small budgets):
# reader mutations (caffemodel/prototxt bytes), generated nets through reader/passes/executor,
# generated nets Keras vs executor, the service's request parsing. FUZZ_SCALE scales every
# budget (0.1 for a quick look). Hypothesis statistics at the end give each fuzzer's count;
# tests/.artifacts/fuzz/<fuzzer> holds the examples finished so far (for a run stopped early).
FUZZ_SCALE ?= 1
fuzz: $(VENV)/.installed
	mkdir -p tests/.artifacts/fuzz
	CAFFE2TF_FUZZ_TALLY=tests/.artifacts/fuzz CAFFE2TF_FUZZ=long CAFFE2TF_FUZZ_SCALE=$(FUZZ_SCALE) \
	CAFFE2TF_FUZZ_EXAMPLES=$$(python3 -c "print(int(25000 * $(FUZZ_SCALE)))") \
	$(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
	  tests/fuzz tests/frontend/test_bad_input.py::test_mutated_caffemodels_raise_only_caffe2tf_errors \
	  tests/frontend/test_bad_input.py::test_mutated_prototxts_raise_only_caffe2tf_errors

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[app,dev,bench]'
	$(PY) benchmarks/read_caffemodel.py
	$(PY) benchmarks/convert_pspnet.py
	$(PY) benchmarks/serve.py

clean:
	rm -rf $(VENV) out tests/.cache tests/.artifacts
