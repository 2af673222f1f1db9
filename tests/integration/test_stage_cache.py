"""Runs in one output root reuse each other's identical finished stages, and only those."""
import json
import subprocess
from tests.helpers import CLI


def run(root, name, *extra):
    p = subprocess.run([*CLI, "run", "recipe=star", "profile=debug",
                        "iterations=1", "tracking.quiet=true", f"output_root={root}", f"run_name={name}", *extra],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return {m.parent.relative_to(root / name).as_posix(): json.loads(m.read_text()).get("reused_from")
            for m in (root / name).glob("iter_*/*/manifest.json")}


def test_late_stage_change_reuses_everything_before_it(tmp_path):
    run(tmp_path, "a")
    b = run(tmp_path, "b", "train.learning_rate=0.001")
    reused = {stage for stage, src in b.items() if src}
    assert reused == {"iter_00/prepare", "iter_00/seed_sft", "iter_00/evaluate", "iter_01/generate",
                      "iter_01/score", "iter_01/rationalize", "iter_01/filter"}
    assert b["iter_00/seed_sft"].endswith("a/iter_00/seed_sft")
    assert (tmp_path / "b/iter_00/seed_sft/model/model.safetensors").read_bytes() == \
        (tmp_path / "a/iter_00/seed_sft/model/model.safetensors").read_bytes()
    # a different seed changes every stage; cache=false turns reuse off
    assert not any(run(tmp_path, "c", "seed=1", "iterations=0").values())
    assert not any(run(tmp_path, "d", "cache=false", "iterations=0").values())
