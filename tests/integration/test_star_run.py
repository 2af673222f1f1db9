"""STaR end to end on the tiny model, driven through the `selfimprove` command as a user would."""
import json
import os
import signal
import subprocess
import time

import pytest

from sigkill import comparable, resumed_from, sigkill_when_written, stage_mtimes  # tests/integration is on the path

from selfimprove.rundir import RunDir, read_jsonl
from tests.helpers import CLI, metrics_by_stage

DEBUG = ["recipe=star", "profile=debug", "tracking.quiet=true"]


def selfimprove(*args, cwd=None, check=True, timeout=600):
    proc = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"selfimprove {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    proc = selfimprove("run", *DEBUG, f"output_root={root}", "run_name=ref", cwd=tmp_path_factory.mktemp("cwd"))
    return root / "ref", proc


def test_run_directory_holds_config_datasets_checkpoints_and_metrics(reference):
    run, proc = reference
    assert (run / "config.yaml").exists() and json.loads((run / "run.json").read_text())["status"] == "finished"
    rows = read_jsonl(run / "metrics.jsonl")
    evals = [r for r in rows if r["stage"] == "evaluate"]
    assert [r["iteration"] for r in evals] == [0, 1, 2]
    assert all("accuracy" in r and "pass@2" in r and "maj@2" in r for r in evals)
    assert {(r["iteration"], r["stage"]) for r in rows} >= {(1, s) for s in
                                                           ("generate", "score", "rationalize", "filter", "train")}
    # datasets load with the datasets library
    import datasets

    ds = datasets.load_dataset("json", data_files=str(run / "iter_01/filter/train_data.jsonl"), split="train")
    assert set(ds.column_names) >= {"prompt", "completion"} and len(ds) > 0
    # rationalized examples are stored without the hint
    for r in read_jsonl(run / "iter_01/rationalize/rationalized.jsonl"):
        assert r["prompt"].startswith("Q: ") and "(" not in r["prompt"] and "(" in r["hinted_prompt"]
    # checkpoints are plain save_pretrained folders, and training changed the weights
    from transformers import AutoModelForCausalLM

    seed = AutoModelForCausalLM.from_pretrained(run / "iter_00/seed_sft/model")
    trained = AutoModelForCausalLM.from_pretrained(run / "iter_01/train/model")
    diffs = [(a - b).abs().max().item() for a, b in zip(seed.parameters(), trained.parameters())]
    assert max(diffs) > 1e-4
    assert "per-iteration summary" in proc.stdout


def test_second_invocation_skips_everything(reference, tmp_path):
    run, _ = reference
    before = stage_mtimes(run)
    proc = selfimprove("run", *DEBUG, f"output_root={run.parent}", "run_name=ref", cwd=tmp_path)
    assert "Nothing to do" in proc.stdout
    assert stage_mtimes(run) == before


def test_sigkill_during_training_then_resume_matches_uninterrupted_run(reference, tmp_path):
    ref, _ = reference
    args = [*CLI, "run", *DEBUG, f"output_root={tmp_path}", "run_name=killed"]
    partial = RunDir(tmp_path / "killed").partial_dir(2, "train") / "checkpoints" / "checkpoint-5"
    # kill between checkpoints: once checkpoint-5 is complete (its trainer_state.json is written last)
    sigkill_when_written(args, partial / "trainer_state.json", timeout=400)
    run = tmp_path / "killed"
    assert not (run / "iter_02/train/manifest.json").exists()
    before = stage_mtimes(run)

    resumed = selfimprove("run", *DEBUG, f"output_root={tmp_path}", "run_name=killed", cwd=tmp_path)
    after = stage_mtimes(run)
    assert all(after[k] == v for k, v in before.items()), "finished stages were recomputed"
    assert resumed_from(run, "iter_02/train") == {"resumed_from_step": 5}
    # same final weights, bit for bit, and the same metrics as the uninterrupted run
    for name in ("iter_02/train/model/model.safetensors",):
        assert (run / name).read_bytes() == (ref / name).read_bytes()
    assert comparable(run) == comparable(ref)
    assert "iter 2 train" in resumed.stdout


def test_tiny_model_saved_locally_runs_through_name_or_path(tmp_path):
    from selfimprove.config import TinyModelConfig
    from selfimprove.models.tiny import save_tiny

    local = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64), tmp_path / "my-model", seed=3)
    selfimprove("run", *DEBUG, "iterations=1", f"model.name_or_path={local}", f"output_root={tmp_path}", "run_name=local")
    cfg = (tmp_path / "local/config.yaml").read_text()
    assert str(local) in cfg and (tmp_path / "local/iter_01/evaluate/manifest.json").exists()


class TestBadInput:
    def test_unknown_recipe(self, tmp_path):
        p = selfimprove("run", "recipe=sstar", f"output_root={tmp_path}", check=False)
        assert p.returncode == 2 and "Unknown recipe 'sstar'" in p.stderr and "star" in p.stderr
        assert not list(tmp_path.iterdir())

    def test_misspelled_key_and_wrong_type(self, tmp_path):
        p = selfimprove("run", "generate.temprature=0.7", check=False)
        assert p.returncode == 2 and "Did you mean 'generate.temperature'" in p.stderr
        p = selfimprove("run", "iterations=three", check=False)
        assert p.returncode == 2 and "iterations=3" in p.stderr

    def test_unwritable_output_root(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        p = selfimprove("run", *DEBUG, f"output_root={blocker}/runs", check=False)
        assert p.returncode == 2 and "is not writable" in p.stderr

    def test_locked_run_directory(self, tmp_path):
        with RunDir(tmp_path / "star").lock():
            p = selfimprove("run", *DEBUG, f"output_root={tmp_path}", check=False)
        assert p.returncode == 2 and f"pid {os.getpid()}" in p.stderr

    def test_conflicting_config_is_refused_and_loses_nothing(self, reference, tmp_path):
        run, _ = reference
        before = stage_mtimes(run)
        p = selfimprove("run", *DEBUG, "seed=1", f"output_root={run.parent}", "run_name=ref", check=False)
        assert p.returncode == 2 and "seed: 0 -> 1" in p.stderr and "reconfigure=true" in p.stderr
        assert stage_mtimes(run) == before

    def test_empty_training_set_stops_with_advice_and_keeps_finished_stages(self, tmp_path):
        p = selfimprove("run", *DEBUG, "filter.min_reward=1.0", "task.train_weights=[0,0,0,1]", "iterations=1",
                        f"output_root={tmp_path}", check=False)
        assert p.returncode == 2 and "The filter kept nothing" in p.stderr and "generate.k" in p.stderr
        run = tmp_path / "star"
        assert (run / "iter_00/seed_sft/manifest.json").exists() and (run / "iter_01/score/manifest.json").exists()
        assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_disk_full_stops_the_stage_with_the_path_and_keeps_finished_stages(tmp_path):
    """A file-size limit makes every write past 96 KB fail (as a full disk would; needs no
    privileges). Under profile=debug prepare's largest file (seed data) is ~83 KB and the model
    ~55 KB, but seed_sft's first checkpoint holds Adam's state (~110 KB), so it cannot be written.
    Then the limit goes and the run resumes without redoing `prepare`."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (96 << 10, 96 << 10))

    args = [*CLI, "run", *DEBUG, "iterations=1", f"output_root={tmp_path}"]
    p = subprocess.run(args, capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "iter 0 seed_sft: a write under" in p.stderr and ".seed_sft.partial failed" in p.stderr
    assert "rerun the same command to resume" in p.stderr
    run = tmp_path / "star"
    prepared = stage_mtimes(run)
    assert list(prepared) == [str(run / "iter_00/prepare/manifest.json")]
    resumed = selfimprove("run", *DEBUG, "iterations=1", f"output_root={tmp_path}")
    assert "iter 0 prepare: finished earlier, skipped" in resumed.stdout
    assert (run / "iter_01/evaluate/manifest.json").exists()
    assert all(stage_mtimes(run)[k] == v for k, v in prepared.items())


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    # a seed model long enough (2000 steps) that Ctrl-C surely lands inside its training
    args = [*CLI, "run", *DEBUG, "seed_sft.steps=2000", f"output_root={tmp_path}",
            "run_name=int"]
    # Ctrl-C as a terminal delivers it. A shell starts a background job (`pytest ... &`) with SIGINT
    # ignored, and a child inherits an ignored signal: the run then ignored it and finished.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoints = RunDir(tmp_path / "int").partial_dir(0, "seed_sft") / "checkpoints"
    deadline = time.time() + 300
    while not list(checkpoints.glob("checkpoint-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "run_name=int" in out
    assert json.loads((tmp_path / "int/run.json").read_text())["status"] == "interrupted"
    assert list(checkpoints.glob("checkpoint-*"))  # the trainer checkpoint survives for the resume


CHAT = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"


def test_instruct_model_with_a_chat_template(tmp_path):
    """model.chat_template=true: prompts are rendered as a user turn, SFT data is conversational."""
    from selfimprove.config import ConfigError, TinyModelConfig
    from selfimprove.models import load_tokenizer, render_prompts
    from selfimprove.models.tiny import save_tiny

    local = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64), tmp_path / "chat-model", seed=3)
    tok = load_tokenizer(local)
    with pytest.raises(ConfigError, match="has no chat template"):
        render_prompts(tok, ["Q: 1+1\nA:"], chat=True)
    tok.chat_template = CHAT
    tok.save_pretrained(local)
    assert render_prompts(load_tokenizer(local), ["Q: 1+1\nA:"], chat=True) == ["<|user|>Q: 1+1\nA:\n<|assistant|>"]
    selfimprove("run", *DEBUG, "iterations=1", f"model.name_or_path={local}", "model.chat_template=true",
                f"output_root={tmp_path}", "run_name=chat")
    assert (tmp_path / "chat/iter_01/evaluate/manifest.json").exists()


def test_score_with_a_chat_template_runs_two_turn_conversations(tmp_path):
    """recipe=score on an instruct-style model (model.chat_template=true): the second turn is a
    conversation in the template, sampled and scored as one rendered text, end to end."""
    from selfimprove.config import TinyModelConfig
    from selfimprove.models.tiny import save_tiny
    from selfimprove.rundir import read_jsonl

    local = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64), tmp_path / "chat-model", seed=3)
    from selfimprove.models import load_tokenizer

    tok = load_tokenizer(local)
    tok.chat_template = CHAT
    tok.save_pretrained(local)
    selfimprove("run", "recipe=score", "profile=debug", "tracking.quiet=true", f"model.name_or_path={local}",
                "model.chat_template=true", "seed_sft.enabled=false", "iterations=1", "score_rl.steps=2",
                "score_rl.problems_per_step=2", "score_rl.k=2", "score_rl.save_steps=1", "task.test_size=8",
                "task.val_size=4", f"output_root={tmp_path}", "run_name=chat_score")
    m = metrics_by_stage(tmp_path / "chat_score")
    assert m[(1, "score_rl")]["steps"] == 2 and m[(1, "score_rl")]["tokens_trained"] > 0
    assert {"acc_t1", "acc_t2"} <= set(m[(1, "evaluate_turns")])
    turns = read_jsonl(tmp_path / "chat_score/iter_01/evaluate_turns/turns.jsonl")
    assert len(turns) == 8 and all(t["turn2"] is not None for t in turns)
