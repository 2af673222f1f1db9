"""V-STaR end to end under profile=debug through the CLI: the buffer grows, the generator's data
accumulates, the verifier is trained once after the last iteration, Best-of-k is reported on the
test split and, for choices, on the validation split. A
SIGKILL during the verifier's DPO training, resumed to the uninterrupted run's weights and
metrics, is one of the fault tier's kill points (tests/faults, `make test-faults`)."""
import subprocess

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage

ARGS = ["recipe=vstar", "profile=debug", "tracking.quiet=true", "threads=1"]


def command(root, name, *extra):
    return [*CLI, "run", *ARGS, f"output_root={root}", f"run_name={name}", *extra]


def test_vstar_debug_run(tmp_path):
    ref = subprocess.run(command(tmp_path, "ref"), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    run = tmp_path / "ref"
    m = metrics_by_stage(run)
    assert m[(2, "verifier")]["steps"] == 8
    # the verifier is trained once, after the last iteration, on pairs from the whole buffer
    assert (1, "verifier") not in m and (1, "verifier_pairs") not in m
    assert m[(2, "verifier_pairs")]["buffer_rows"] == m[(2, "buffer")]["rows"] > m[(1, "buffer")]["rows"]
    assert m[(2, "buffer")]["rows"] == m[(1, "buffer")]["rows"] + m[(2, "generate")]["samples"]
    assert m[(2, "filter")]["kept"] > m[(1, "filter")]["kept"]  # the generator's data accumulates
    # Best-of-k with the verifier in the last iteration; generator-only estimators before it
    assert {"pass@1", "majority@2", "verifier@2", "oracle@2", "verifier_pair_accuracy"} <= set(m[(2, "evaluate")])
    assert "verifier@2" not in m[(1, "evaluate")] and "majority@2" in m[(1, "evaluate")]
    scored = [r for r in read_jsonl(run / "iter_02/evaluate/eval.jsonl") if r["mode"] == "sample"]
    assert scored and all(isinstance(r["verifier_score"], float) for r in scored)
    # the same on the validation split's own candidates: what a choice of verifier settings reads
    assert {"val_pass@1", "val_majority@2", "val_verifier@2", "val_oracle@2", "val_verifier_pair_accuracy",
            "val_accuracy"} <= set(m[(2, "evaluate")])
    val = [r for r in read_jsonl(run / "iter_02/evaluate/val_eval.jsonl") if r["mode"] == "sample"]
    assert val and all(isinstance(r["verifier_score"], float) for r in val)
    assert {r["prompt_id"].split("-")[0] for r in val} == {"val"} and {r["prompt_id"].split("-")[0] for r in scored} == {"test"}
    # the verifier starts from the last generator (recipe: verifier.init=policy) and moved away from it
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run / "iter_02/train/model")
    verifier = AutoModelForCausalLM.from_pretrained(run / "iter_02/verifier/model")
    assert max((a - b).abs().max().item() for a, b in zip(base.parameters(), verifier.parameters())) > 1e-5
