"""Self-Rewarding end to end under profile=debug through the CLI: every stage runs on the tiny
model (self-instruction, candidates, self-judging, pairs, DPO continuing from the previous
model), and a prompts-only task (no gold answers) runs too. A SIGKILL inside the DPO stage,
resumed to the uninterrupted run's metrics and weights, is one of the fault tier's kill points
(tests/faults, `make test-faults`)."""
import json
import subprocess

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage

ARGS = ["recipe=self_rewarding", "profile=debug", "tracking.quiet=true", "threads=1"]


def cli(*args, check=True):
    p = subprocess.run([*CLI, "run", *ARGS, *args], capture_output=True, text=True,
                       timeout=900)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_debug_run(tmp_path):
    proc = cli(f"output_root={tmp_path}", "run_name=sr")
    ref = tmp_path / "sr"
    m = metrics_by_stage(ref)
    for it in (1, 2):
        si, gen, judge, pairs, dpo = (m[(it, s)] for s in ("self_instruct", "generate", "judge", "pairs", "dpo"))
        assert si["attempted"] == 48 and si["kept"] + si["invalid"] + si["duplicate"] + si["copied"] + \
            si["heldout_overlap"] == 48
        assert gen["samples"] == 4 * gen["problems"] and gen["temperature"] == 0.7
        assert judge["judgments"] == 2 * judge["candidates"] and 0 <= judge["unparseable_fraction"] <= 1
        assert pairs["pairs"] + pairs["ties"] + pairs["too_few_scored"] + pairs["identical"] + \
            pairs["dropped_at_step_end"] == pairs["prompts"]
        assert dpo["pairs"] == pairs["pairs"] and dpo["steps"] == 12
        assert "pairwise_accuracy" in m[(it, "judge_quality")] and "accuracy" in m[(it, "evaluate")]
    assert "pairwise_accuracy" in m[(0, "judge_quality")]
    assert m[(0, "judge_seed")]["eft_rows"] == 100 * 64 and "per-iteration summary" in proc.stdout
    # DPO continued from the previous model, which is also its reference (the dpo stage's init)
    cfg = (ref / "config.yaml").read_text()
    assert "init: policy" in cfg and "beta: 0.1" in cfg
    pairs = read_jsonl(ref / "iter_01/pairs/pairs.jsonl")
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)


def test_prompts_only_task_runs_without_gold(tmp_path):
    """task=prompts: a JSONL of prompts and a seed file; held-out accuracy is absent."""
    from selfimprove.config import ArithmeticTaskConfig
    from selfimprove.tasks.arithmetic import Arithmetic

    task = Arithmetic(ArithmeticTaskConfig())
    splits = task.splits()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": task.prompt(p)}) + "\n" for p in splits["train"][:88]))
    seed = tmp_path / "seed.jsonl"
    rows = [{"prompt": task.prompt(p), "response": p["solution"]} for p in splits["seed"]]
    rows += [{"kind": "eft", "prompt": task.prompt({"question": e["question"]}), "response": e["response"],
              "judgment": e["judgment"]} for e in task.eft_examples(splits["seed"], 2, 0)]
    seed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = tmp_path / "pairs.jsonl"  # held-out (chosen, rejected) answers, three of them; two judged
    pairs.write_text("".join(json.dumps({"prompt": task.prompt(p), "chosen": f" {p['answer']}", "rejected": " 0"}) + "\n"
                             for p in splits["test"][:3]))
    cli(f"output_root={tmp_path}", "run_name=p", "iterations=1", "task=prompts", f"task.path={prompts}",
        f"task.seed_path={seed}", "task.test_size=24", "self_instruct.enabled=false", "generate.split=train",
        f"task.judge_pairs_path={pairs}", "judge_quality.max_pairs=2")
    m = metrics_by_stage(tmp_path / "p")
    assert "accuracy" not in m[(1, "evaluate")] and m[(1, "evaluate")]["mean_chars"] > 0
    assert m[(0, "judge_quality")]["pairs"] == 2  # the file's pairs, capped by judge_quality.max_pairs
    assert m[(1, "dpo")]["pairs"] > 0 and m[(0, "judge_seed")]["eft_rows"] == 800
    # the score regex is checked against the seed file's EFT judgments at startup
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "eft", "prompt": "Q: 1+1\nA:", "response": " 2", "judgment": "fine. 4/5"}) + "\n")
    p = cli(f"output_root={tmp_path}", "run_name=bad", "task=prompts", f"task.path={prompts}", f"task.seed_path={bad}",
            check=False)
    assert p.returncode == 2 and "reads no score" in p.stderr and "4/5" in p.stderr
