"""Stale reuse: a finished stage is reused (from the stage cache or on resume) only when the code,
the data files' bytes, the model's weights and the device that made it are the same as now.
Each test first shows the reuse happening, so that it could fail if reuse were simply off."""
import json
import shutil
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

import selfimprove
from selfimprove import provenance
from tests.helpers import CLI

REPO = Path(selfimprove.__file__).resolve().parent.parent
PREPARE_ONLY = ["profile=debug", "iterations=0", "setup=[prepare]", "tracking.quiet=true"]


def run(root, name, *extra, src=None, expect=0):
    env = None
    if src is not None:  # run the package from a copy of its sources (which the test edits)
        import os

        env = dict(os.environ, PYTHONPATH=str(src))
    p = subprocess.run([*CLI, "run", "recipe=star", *PREPARE_ONLY,
                        f"output_root={root}", f"run_name={name}", *extra],
                       capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert p.returncode == expect, p.stdout + p.stderr
    return p


def manifest(root, name, stage="iter_00/prepare"):
    return json.loads((root / name / stage / "manifest.json").read_text())


def test_editing_the_code_invalidates_cache_and_refuses_resume(tmp_path):
    src = tmp_path / "src"
    for part in ("selfimprove", "conf", "recipes"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out"
    out.mkdir()
    run(out, "a", src=src)
    run(out, "b", src=src)
    assert manifest(out, "b")["reused_from"].endswith("a/iter_00/prepare")  # same code: reused

    with open(src / "selfimprove/stages/prepare.py", "a") as f:
        f.write("\n# an edit that a stale cache would ignore\n")
    run(out, "c", src=src)
    assert manifest(out, "c")["reused_from"] is None  # other code: computed afresh, not reused
    assert manifest(out, "c")["fingerprint"] != manifest(out, "a")["fingerprint"]

    p = run(out, "a", src=src, expect=2)  # resuming a run that other code started
    assert "was started by different code" in p.stderr and "reconfigure=true" in p.stderr
    assert "Traceback" not in p.stderr
    run(out, "a", "reconfigure=true", src=src)
    assert manifest(out, "a")["fingerprint"] == manifest(out, "c")["fingerprint"]


def test_a_changed_data_file_is_not_reused(tmp_path):
    def write(path, n):
        rows = [{"question": f"What is {a} + 1?", "answer": f"{a} + 1 = {a + 1}\n#### {a + 1}"} for a in range(n)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write(train, 40)
    write(test, 10)
    task = ["task=gsm8k", f"task.train_path={train}", f"task.test_path={test}", "task.val_size=5"]
    run(tmp_path, "a", *task)
    run(tmp_path, "b", *task)
    assert manifest(tmp_path, "b")["reused_from"]  # same bytes: reused
    write(train, 41)  # same path, one more problem
    run(tmp_path, "c", *task)
    assert manifest(tmp_path, "c")["reused_from"] is None
    run(tmp_path, "a", *task)  # resuming the first run recomputes its stage on the new data
    assert manifest(tmp_path, "a")["fingerprint"] == manifest(tmp_path, "c")["fingerprint"]


def test_the_same_config_on_another_device_is_not_reused(tmp_path, monkeypatch):
    from selfimprove.config.compose import compose
    from selfimprove.pipeline import run_pipeline
    from selfimprove.tracking import Console

    def once(name, device):
        monkeypatch.setattr("selfimprove.models.resolve_device", lambda _name="auto": device)
        (cfg,) = compose(["recipe=star", *PREPARE_ONLY, f"output_root={tmp_path}", f"run_name={name}"])
        assert run_pipeline(cfg, tmp_path / name, [], {"recipe": "star"}, Console(quiet=True)) == 0
        return manifest(tmp_path, name)

    cpu, cpu_again, gpu = once("cpu", "cpu"), once("cpu2", "cpu"), once("gpu", "cuda")
    assert cpu_again["reused_from"]
    assert gpu["reused_from"] is None and gpu["fingerprint"] != cpu["fingerprint"]
    assert provenance.environment("cuda", "auto") == {"device": "cuda", "dtype": "bfloat16"}
    assert provenance.environment("cpu", "auto") == {"device": "cpu", "dtype": "float32"}


def test_model_identity_follows_the_weights_not_the_path(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(b"x" * (2 << 20))  # above the size that is cached by mtime
    first = provenance.model_identity(str(folder))
    assert provenance.model_identity(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"y" * (2 << 20))
    assert provenance.model_identity(str(folder)) != first
    assert provenance.model_identity("org/some-model").startswith("hub:org/some-model")
    cfg = OmegaConf.create({"train_path": str(folder / "config.json"), "other": "x", "nested": {"path": "nope"}})
    assert list(provenance.data_files(OmegaConf.to_container(cfg))) == ["train_path"]
