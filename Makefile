# The two commands of the README: `make demo` runs the main job, `make test` the test suite.
# Each creates .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup clean

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

# The whole chain on the embedded default (about 22 minutes on 2 CPU cores): pretrain a small
# rope2d TRM on the ARC-AGI-1 training tasks that fit 10x10 (9 minutes), then adapt it to all 400
# ARC-AGI-1 evaluation tasks, which it has never seen, on canvases sized to their grids up to 30x30,
# and answer every one of them within a 10-minute budget; score the submission. runs/demo is
# started afresh each time.
DEMO := runs/demo
demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/arcsolver pretrain --out $(DEMO)/pretrain
	$(BIN)/arcsolver data export arc1/evaluation --out $(DEMO)/data
	$(BIN)/arcsolver solve $(DEMO)/data/arc1-evaluation_challenges.json \
		--checkpoint $(DEMO)/pretrain --out $(DEMO)/submission.json --time-budget 600
	$(BIN)/arcsolver evaluate $(DEMO)/submission.json \
		--solutions $(DEMO)/data/arc1-evaluation_solutions.json

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
