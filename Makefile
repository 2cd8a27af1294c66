# Every install step lives here, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup system-deps test test-fast demo bench evalplus-venv clean

setup: $(STAMP) system-deps

# Debian's headless Chromium renders the HTML report in the tests (needs root, as CI has).
system-deps:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[cpu,test]"
	@# PyPI's torchvision/torchaudio/torchcodec break `import vllm` beside torch 2.13.0+cpu
	@# ("operator torchvision::nms does not exist"); text models need none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	rm -f $(VENV)/.installed-*
	touch $@

# Every lane (tests/{unit,sandbox,integration,e2e}); what CI runs.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the import rules of docs/architecture.md (pyproject's importlinter contracts)
	$(PY) -m pytest -q --durations=20

# Minutes, not CI's twenty: unit, sandbox and integration tests that are not marked slow;
# no vLLM engine, no full dataset.
test-fast: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not e2e and not slow"

# The main job on the embedded default (a local Ray started in-process), with a tiny random
# Qwen3 built locally: no weights to download, no GPU.
demo: setup
	$(PY) -m ray_jobs.demo --output-dir runs/demo

bench: setup
	$(PY) benchmarks/score_throughput.py

# EvalPlus, the baseline of benchmarks/score_vs_evalplus.py, in its own venv: its dependencies
# (openai, anthropic, datasets, ...) are no business of the project's.
evalplus-venv: .venv-evalplus/bin/evalplus.evaluate

.venv-evalplus/bin/evalplus.evaluate:
	$(PYTHON) -m venv .venv-evalplus
	.venv-evalplus/bin/pip install -q evalplus==0.3.1

clean:
	rm -rf $(VENV) .venv-evalplus runs .pytest_cache
