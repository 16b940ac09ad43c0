# Two entry points for a fresh machine:  `make book` (set up, check data, build the book) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# one data root for everything; tests and CI use ../shared/data beside the checkout
export RECREPRO_DATA ?= $(abspath ../shared/data)
DATASETS_HERE := ml-100k ml-1m ml-1m-ncf douban flixster yahoo_music ml-100k-monti synthetic_netflix

.PHONY: setup data book test lint smoke full diff clean bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[book,test]"
	# reference RBO for the tests; its numpy<2 requirement is a stale pin (the test shows it runs on numpy 2)
	$(BIN)/pip install -q --no-deps "rbo==0.1.3"
	touch $@

setup: $(BIN)/.installed

data: setup
	$(BIN)/recrepro data verify --strict $(DATASETS_HERE)

book: data
	$(BIN)/recrepro book

lint: setup
	$(BIN)/ruff check src tests notebooks benchmarks
	$(BIN)/ruff format --check src tests notebooks benchmarks

test: lint
	$(BIN)/pytest

smoke: setup
	$(BIN)/recrepro run --profile smoke

full: setup
	$(BIN)/recrepro run --profile full

diff: setup
	$(BIN)/recrepro diff

bench: setup
	$(BIN)/pip install -q ".[bench]"
	$(BIN)/python benchmarks/bench_biased_mf.py

clean:
	rm -rf build book/_build book/generated
