"""task=gsm8k and task=math end to end (STaR, one iteration) on small JSONL files written here,
with the tiny model: the data path, prompts, checkers and rationalization hints of the real-data
tasks through the same pipeline a GPU user runs (there with model.name_or_path=...)."""
import json
import subprocess

import pytest

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsm8k_rows(n, offset=0):
    return [{"question": f"Tom has {a} apples and buys {a + 1} more. How many now?",
             "answer": f"He has {a} + {a + 1} = <<{a}+{a + 1}={2 * a + 1}>>{2 * a + 1} apples.\n#### {2 * a + 1}"}
            for a in range(offset, offset + n)]


def math_rows(n, offset=0):
    return [{"problem": f"What is ${a} + {a + 1}$?", "solution": f"${a} + {a + 1} = \\boxed{{{2 * a + 1}}}$.",
             "level": f"Level {1 + a % 5}"} for a in range(offset, offset + n)]


@pytest.mark.parametrize("name,rows", [("gsm8k", gsm8k_rows), ("math", math_rows)])
def test_star_runs_on_a_real_data_task(tmp_path, name, rows):
    train, test = write(tmp_path / "train.jsonl", rows(40)), write(tmp_path / "test.jsonl", rows(8, offset=100))
    p = subprocess.run([*CLI, "run", "recipe=star", "profile=debug",
                        f"task={name}", f"task.train_path={train}", f"task.test_path={test}", "task.fewshot=false",
                        "task.num_fewshot=16", "task.val_size=4", "iterations=1", "tracking.quiet=true",
                        f"output_root={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "star"
    m = metrics_by_stage(run)
    assert m[(0, "prepare")]["seed_problems"] == 16 and m[(0, "prepare")]["test_problems"] == 8
    assert "accuracy" in m[(1, "evaluate")]
    hinted = read_jsonl(run / "iter_01/rationalize/rationalized.jsonl")[0]["hinted_prompt"]
    assert ("(The answer is" if name == "math" else "? (") in hinted
    seed = read_jsonl(run / "iter_00/prepare/seed_data.jsonl")[0]["completion"]
    assert ("\\boxed{" in seed) if name == "math" else ("####" in seed and "<<" not in seed)
