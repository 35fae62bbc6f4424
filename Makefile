# The two commands of the README: `make demo` and `make test`.
# Each sets up what it needs (venv, pinned requirements, MediaPipe TFLite
# assets from the pinned wheel, the custom-op build) and then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)
DEMO_OUT ?= demo_out

.PHONY: setup venv assets ops demo test clean

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

assets: venv
	$(BIN)/python -m tf_face.assets

ops: venv
	$(BIN)/python setup.py -q build_ext --inplace || echo "WARNING: custom ops did not build; tf_face will use the pure-TF reference (slower)."

setup: venv assets ops

demo: setup
	$(BIN)/python -m tf_face.cli.demo --out_dir=$(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf build $(DEMO_OUT) tf_face/render/*.so ops/*.o
