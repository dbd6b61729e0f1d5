# `make run`: set up, then run every notebook on the embedded smoke data.
# `make test`: set up, then run the whole test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := caption-workbench
STAMP := $(VENV)/.installed

.PHONY: setup run test bench lint format clean lifecycle-b64

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3.11 (caption-workbench)" --env TF_ENABLE_ONEDNN_OPTS 1
	touch $(STAMP)

run: setup
	$(PY) -m helpers run --preset smoke

test: setup
	bash tests/browser_setup.sh || echo "warning: no chromium, the browser test will be skipped" >&2
	$(PY) -m helpers doctor
	$(PY) -m pytest

# Benchmarks (not tests): writes benchmarks/results.md and results.json. Offline, so a stray hub call fails fast.
bench: setup
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.run

lint: setup
	$(VENV)/bin/ruff check helpers tests notebooks benchmarks
	$(VENV)/bin/ruff format --check helpers tests notebooks benchmarks

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
