.PHONY: install test test-unit test-faults test-slurm smoke bench run

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

# against a real Slurm: sweeps, ls, requeue and time-limit resume, sbatch errors, Slurm shards.
# `sudo scripts/local_slurm.sh start` makes a single-node Slurm here; skipped without sbatch.
test-slurm:
	python -m pytest -q -s -m slurm tests/slurm

smoke:
	selfimprove run recipe=star profile=debug run_name=smoke

run:
	selfimprove run recipe=star

bench:
	python scripts/bench_sampling.py
