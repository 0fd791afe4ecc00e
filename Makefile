# `make run` and `make test` set up .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-busy bench clean settings-docs catalog

$(BIN)/python:
	@echo "first set-up: installing PyTorch and the rest into $(VENV), about 2 minutes and 6 GB"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip shows its progress: the first install downloads for minutes. The note on reaching `trainconsole` is printed
# once, at the end of the first install (no stamp yet), not after a reinstall for a changed pyproject.toml.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	@test -e $(STAMP) || echo 'set-up done: the command is $(BIN)/trainconsole (or `source $(BIN)/activate`, then trainconsole)'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/trainconsole

# The suite in TEST_WORKERS processes (pytest-xdist), more than a 2-core machine has: the end-to-end tests mostly
# wait on the processes they start. A test file goes to one worker whole (its module fixtures made once), files in
# the order collected (tests/e2e, the longest, first). TEST_WORKERS=0 runs it in one process. 3, not 4: at 4 two
# end-to-end tests ran past their bounds at load 6 (BENCHMARKS.md, "Test suite").
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=10 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# the suite three times in a row beside two busy processes (a shared 2-core machine); not part of .ci/run
test-busy: $(STAMP)
	bash tests/busy.sh

# `make bench` writes BENCHMARKS.md (about 10 minutes; run it on a quiet machine); BENCH_QUICK=1 makes it a 1-2 minute smoke run.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py --write
	$(BIN)/python benchmarks/processes.py --write
	$(BIN)/python benchmarks/first_char.py --write
	$(BIN)/python benchmarks/table_reader.py --write
	$(BIN)/python benchmarks/sweep.py --write

# docs/settings.md and settings.toml are written from the settings schema (engine/settings/config.py)
settings-docs: $(STAMP)
	$(BIN)/python -m engine.settings.reference --write

# the translations (engine/io/i18n.py): extract every marked string, merge it into each .po, compile the .mo files
catalog: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --omit-header -o engine/locale/trainconsole.pot .
	$(BIN)/pybabel update -i engine/locale/trainconsole.pot -d engine/locale -D trainconsole --no-fuzzy-matching
	$(BIN)/pybabel compile -d engine/locale -D trainconsole

clean:
	rm -rf $(VENV) runs .pytest_cache
