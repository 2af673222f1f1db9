.PHONY: install test test-unit smoke bench run

install:
	pip install torch==2.13.0
	pip install -e ".[dev]"

test:
	python -m pytest -q tests

test-unit:
	python -m pytest -q tests/unit

smoke:
	selfimprove run recipe=star profile=debug run_name=smoke

run:
	selfimprove run recipe=star

bench:
	python scripts/bench_sampling.py
