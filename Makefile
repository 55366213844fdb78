# The two commands of the README: `make demo` runs the main job, `make test` the test suite.
# Each creates .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-kaggle-image lint setup clean

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

# The whole chain on the embedded default (about 23 minutes on 2 CPU cores): pretrain a small
# rope2d TRM on the ARC-AGI-1 training tasks that fit 10x10 (8 minutes), then adapt it to all 400
# ARC-AGI-1 evaluation tasks, which it has never seen, on canvases sized to their grids up to
# 30x30, and answer every one of them from the model within a 12-minute budget (2 augmented
# versions voted per test input, so that inference fits a CPU); score the submission, into an HTML
# page of every task, and draw the pretraining curves. runs/demo is started afresh each time.
DEMO := runs/demo
demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/arcsolver pretrain --out $(DEMO)/pretrain --set run.time_limit_s=480 --set eval.max_versions=4
	$(BIN)/arcsolver data export arc1/evaluation --out $(DEMO)/data
	$(BIN)/arcsolver solve $(DEMO)/data/arc1-evaluation_challenges.json --checkpoint $(DEMO)/pretrain \
		--out $(DEMO)/submission.json --time-budget 720 --set infer.max_versions=2
	$(BIN)/arcsolver evaluate $(DEMO)/submission.json \
		--solutions $(DEMO)/data/arc1-evaluation_solutions.json --html $(DEMO)/report.html
	$(BIN)/arcsolver report $(DEMO)/pretrain --out $(DEMO)/curves.png
	@echo "open first: $(DEMO)/report.html (every task: its demonstrations, the two attempts, the answer)"
	@echo "then: $(DEMO)/curves.png (pretraining: loss, accuracy, halting steps, held-out pass@k)"

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2

# The solve and adaptation tests and the notebook run as on Kaggle's notebook image, in a second environment
# of its Python (3.12) that installs exactly its package versions, torch's included (constraints/kaggle-image.txt).
IMAGE_VENV := .venv-kaggle-image
IMAGE_TESTS := tests/kaggle/test_notebook.py tests/solve/test_solver.py tests/solve/test_resilience.py \
	tests/engine/test_optim.py tests/engine/test_ema.py tests/solve/test_shards.py tests/solve/test_submission.py \
	tests/solve/test_evaluate.py tests/data/test_loaders.py tests/recipes/test_recipes.py tests/test_constraints.py

$(IMAGE_VENV)/.installed: pyproject.toml constraints/kaggle-image.txt scripts/kaggle-image-venv.sh
	bash scripts/kaggle-image-venv.sh $(IMAGE_VENV)
	touch $@

test-kaggle-image: $(IMAGE_VENV)/.installed
	$(IMAGE_VENV)/bin/python -m pytest -q -n 2 $(IMAGE_TESTS)

# ruff (pyflakes, import order, bugbear) and its formatter at one line length; mypy with the
# pydantic plugin on the model and data layers (pyproject.toml holds the settings).
lint: $(VENV)/.installed
	$(BIN)/ruff check arcsolver tests benchmarks
	$(BIN)/ruff format --check arcsolver tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(IMAGE_VENV) .pytest_cache .hypothesis
