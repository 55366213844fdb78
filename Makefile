# The two commands of the README: `make demo` runs the main job, `make test` the test suite.
# Each creates .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup clean

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/arcsolver data list
	for set in arc1/training arc1/evaluation arc2/training arc2/evaluation; do \
		$(BIN)/arcsolver data check $$set || exit 1; \
	done

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
