# `make run`: set up, then run every notebook on the embedded smoke data.
# `make test`: set up, then run the whole test suite.
# `make lab`: set up, then open the notebooks in JupyterLab.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := caption-workbench
STAMP := $(VENV)/.installed

.PHONY: setup run lab test test-slow bench gpu-check rehearse lint format clean lifecycle-b64
.PHONY: docs-images serve-venv serve-local

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt  # the runtime pins and the test tools
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3.11 (caption-workbench)" --env TF_ENABLE_ONEDNN_OPTS 1
	touch $(STAMP)

run: setup
	$(PY) -m helpers run --preset smoke

# The notebooks in JupyterLab with the $(KERNEL) kernel. Uploads of up to 128 MiB reach the kernel (a stock
# server drops websocket messages over 10 MiB, so the demo could not say a file is over its limit). More
# options through LAB_ARGS, e.g. `make lab LAB_ARGS="--port=8890 --no-browser"`.
LAB_ARGS ?=
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --KernelManager.transport_encryption=auto \
		'--ServerApp.tornado_settings={"websocket_max_message_size": 134217728}' $(LAB_ARGS)

# Two pytest-xdist workers. tests/xdist_groups.py keeps the tests sharing a run folder on one worker and sorts
# the tests into the order work is handed out, which --no-loadscope-reorder keeps.
# The serving environment is built beside .venv (two installs at once) for tests/test_model_server.py.
PYTEST_ARGS ?= -n 2 --dist loadgroup --no-loadscope-reorder
test:
	$(MAKE) --no-print-directory -j2 setup serve-venv
	bash tests/browser_setup.sh || echo "warning: no chromium, the browser test will be skipped" >&2
	$(PY) -m helpers doctor
	$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

# The longer checks (marked `slow`: the full-preset rehearsal slice, the sample preset on the real samples,
# the platform checks against PyPI, the benchmarks' quick run, ...): CI runs them after `make test`.
test-slow:
	$(MAKE) --no-print-directory -j2 setup serve-venv
	$(PY) -m pytest $(PYTEST_ARGS) -m slow

# Benchmarks (not tests): writes benchmarks/results.md and results.json. Offline, so a stray hub call fails fast.
bench: setup
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.run

# On a GPU machine only (it refuses elsewhere): ResNet50 and GPT-2 training speed and peak GPU memory, in
# one process; a few minutes.
gpu-check: setup
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.gpu_check

# The `full` preset rehearsed on this machine (not a test): notebooks 01-07 through the real loaders against
# local stand-ins of every download, a few steps per phase; writes rehearsal/results.md (~15-25 minutes).
rehearse: setup
	HF_HUB_OFFLINE=1 $(PY) -m rehearsal.run

lint: setup
	$(VENV)/bin/ruff check helpers tests notebooks benchmarks rehearsal
	$(VENV)/bin/ruff format --check helpers tests notebooks benchmarks rehearsal

format: setup
	$(VENV)/bin/ruff format helpers tests notebooks
	$(VENV)/bin/ruff check --fix helpers tests notebooks

clean:
	rm -rf runs .pytest_cache .ruff_cache

# Prints lifecycle-config.sh base64-encoded, as CreateNotebookInstanceLifecycleConfig's Content wants it,
# and refuses when the encoded script is over the service's 16384-character limit:
#   B64=$(make -s lifecycle-b64)
#   aws sagemaker create-notebook-instance-lifecycle-config \
#     --notebook-instance-lifecycle-config-name caption-workbench \
#     --on-create Content="$B64" --on-start Content="$B64"
lifecycle-b64:
	@b64=$$(base64 -w0 lifecycle-config.sh); \
	if [ $${#b64} -gt 16384 ]; then \
		echo "lifecycle-config.sh is $${#b64} characters in base64; SageMaker accepts at most 16384" >&2; exit 1; \
	fi; \
	echo "$$b64"

# The picture on the README: notebook 06's test captions (captioner, image-blind twin, references) from a
# smoke run of 01 and 06 in its own run folder (a few minutes), copied to docs/images/.
docs-images: setup
	$(PY) -m helpers run --preset smoke --only 01,06 --run-dir runs/docs-images
	mkdir -p docs/images
	cp runs/docs-images/figures/06-test-captions.png docs/images/06-test-captions.png

# The serving stack of SageMaker's PyTorch inference image, for helpers.aws.local_server (not needed otherwise).
SERVE_VENV := .venv-serve
serve-venv: $(SERVE_VENV)/.installed
$(SERVE_VENV)/.installed: serving/requirements-image.txt
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -r serving/requirements-image.txt
	touch $@

# A run's models in that model server on http://127.0.0.1:$(PORT) until Ctrl-C (packaged with their wheels,
# unpacked into $(RUN_DIR)/serve-local/). The default run folder is what `make run` writes.
RUN_DIR ?= runs/smoke
PORT ?= 8080
serve-local: setup serve-venv
	$(PY) -m helpers.aws.local_server --run-dir $(RUN_DIR) --port $(PORT)
