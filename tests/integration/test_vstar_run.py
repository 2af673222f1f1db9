"""V-STaR end to end under profile=debug through the CLI: the buffer grows, the generator's data
accumulates, the verifier is trained once after the last iteration, Best-of-k is reported; a
SIGKILL during the verifier's DPO training resumes from its checkpoint to the same weights and
the same final metrics as an uninterrupted run."""
import subprocess
import sys

from sigkill import comparable, resumed_from, sigkill_when_written  # tests/integration is on the path

from selfimprove.rundir import read_jsonl

ARGS = ["recipe=vstar", "profile=debug", "tracking.quiet=true", "threads=1"]
KILL_AT = "iter_02/.verifier.partial/checkpoints/checkpoint-4/trainer_state.json"  # verifier save_steps=4 of 8


def command(root, name, *extra):
    return [sys.executable, "-m", "selfimprove.cli", "run", *ARGS, f"output_root={root}", f"run_name={name}", *extra]


def test_vstar_debug_run_with_kill_during_verifier_training(tmp_path):
    # 1. killed inside the verifier's DPO training, right after its first checkpoint is complete
    sigkill_when_written(command(tmp_path, "killed"), tmp_path / "killed" / KILL_AT)
    assert not (tmp_path / "killed" / "iter_02" / "verifier" / "manifest.json").exists()

    # 2. uninterrupted reference; it reuses the killed run's finished stages (same fingerprints)
    # and computes the verifier and the final evaluation itself
    ref = subprocess.run(command(tmp_path, "ref"), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    # 3. resume without the stage cache, so the verifier really continues from checkpoint-4 and
    # the final evaluation scores with the resumed verifier
    resumed = subprocess.run(command(tmp_path, "killed", "cache=false"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run, reference = tmp_path / "killed", tmp_path / "ref"
    assert comparable(run) == comparable(reference)
    weights = "iter_02/verifier/model/model.safetensors"
    assert (run / weights).read_bytes() == (reference / weights).read_bytes()

    m = {(r["iteration"], r["stage"]): r for r in read_jsonl(run / "metrics.jsonl")}
    assert resumed_from(run, "iter_02/verifier") == {"resumed_from_step": 4} and m[(2, "verifier")]["steps"] == 8
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
    # the verifier starts from the last generator (recipe: verifier.init=policy) and moved away from it
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run / "iter_02/train/model")
    verifier = AutoModelForCausalLM.from_pretrained(run / "iter_02/verifier/model")
    assert max((a - b).abs().max().item() for a, b in zip(base.parameters(), verifier.parameters())) > 1e-5
