# The two commands of the README: `make demo` runs the main job, `make test` the test suite.
# Each creates .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup clean

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

# The whole chain on the embedded default (15-20 minutes on 2 CPU cores): pretrain on the
# ARC-AGI-1 training tasks that fit 10x10, then adapt to the 77 unseen ARC-AGI-1 evaluation tasks
# that fit 10x10, write their submission and score it. runs/demo is started afresh each time.
DEMO := runs/demo
demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/arcsolver pretrain --out $(DEMO)/pretrain
	$(BIN)/arcsolver data export arc1/evaluation --max-side 10 --out $(DEMO)/data
	$(BIN)/arcsolver solve $(DEMO)/data/arc1-evaluation-max10_challenges.json \
		--checkpoint $(DEMO)/pretrain --out $(DEMO)/submission.json
	$(BIN)/arcsolver evaluate $(DEMO)/submission.json \
		--solutions $(DEMO)/data/arc1-evaluation-max10_solutions.json

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
