.PHONY: install test test-unit test-faults test-learning smoke bench run

install:
	pip install torch==2.13.0
	pip install -e ".[dev]"

test:
	python -m pytest -q tests

test-unit:
	python -m pytest -q tests/unit

# SIGKILL real runs of every recipe at chosen points and compare with uninterrupted runs (~15 min; CI runs it)
test-faults:
	python -m pytest -q -s tests/faults

# would a broken learner be caught? STaR's accuracy, DPO's preference accuracy and SCoRe's reward rise
test-learning:
	python -m pytest -q -s tests/learning

smoke:
	selfimprove run recipe=star profile=debug run_name=smoke

run:
	selfimprove run recipe=star

bench:
	python scripts/bench_sampling.py
