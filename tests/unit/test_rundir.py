import multiprocessing as mp
import os
import signal
import time

import pytest

from selfimprove.rundir import Manifest, RunDir, RunLockedError, fingerprint, read_jsonl, write_jsonl


def finish(rd, it, stage, fp, payload="data"):
    out = rd.begin(it, stage, fp)
    (out / "a.txt").write_text(payload)
    rd.commit(Manifest(stage=stage, kind="k", iteration=it, fingerprint=fp, artifacts={"a": "a.txt"},
                       metrics={"m": 1}, seconds=0.1))


def test_done_marker_is_written_last_and_checked(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.finished(1, "gen") is None
    out = rd.begin(1, "gen", "fp1")
    (out / "a.txt").write_text("partial")
    assert rd.finished(1, "gen") is None  # no manifest: not done, will be redone
    finish(rd, 1, "gen", "fp1")
    m = rd.finished(1, "gen")
    assert m.fingerprint == "fp1" and m.files["a.txt"]["bytes"] == 4
    assert not rd.partial_dir(1, "gen").exists()


def test_truncated_artifact_means_not_finished(tmp_path):
    rd = RunDir(tmp_path)
    finish(rd, 0, "gen", "fp", payload="0123456789")
    (rd.stage_dir(0, "gen") / "a.txt").write_text("01234")
    assert rd.finished(0, "gen") is None


def test_corrupted_artifact_of_the_same_size_means_not_finished(tmp_path):
    rd = RunDir(tmp_path)
    finish(rd, 0, "gen", "fp", payload="0123456789")
    (rd.stage_dir(0, "gen") / "a.txt").write_text("0123456780")  # one byte flipped
    assert rd.finished(0, "gen") is None


def test_write_failures_are_recognised_however_a_library_reports_them():
    import errno

    from safetensors import SafetensorError

    from selfimprove.rundir import write_failure

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/data.jsonl")
    assert write_failure(full) == "/runs/x/data.jsonl: No space left on device"
    assert write_failure(SafetensorError("Error while serializing: I/O error: File too large (os error 27)")) == \
        "File too large"
    try:  # a wrapper whose cause is the OSError
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as wrapped:
        assert "No space left" in write_failure(wrapped)
    assert "torch.save" in write_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos"))
    assert write_failure(ValueError("loss is nan")) is None
    assert write_failure(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None  # a bug, not the disk


def test_partial_folder_kept_only_for_same_fingerprint(tmp_path):
    rd = RunDir(tmp_path)
    out = rd.begin(0, "train", "fpA")
    (out / "checkpoint-5").mkdir()
    assert (rd.begin(0, "train", "fpA") / "checkpoint-5").exists()  # resume material kept
    assert not (rd.begin(0, "train", "fpB") / "checkpoint-5").exists()  # other config: cleared


def test_killed_between_manifest_and_rename_counts_as_finished(tmp_path):
    rd = RunDir(tmp_path)
    out = rd.begin(0, "s", "fp")
    (out / "manifest.json").write_text(
        '{"stage": "s", "kind": "k", "iteration": 0, "fingerprint": "fp", "artifacts": {}, "metrics": {}, "seconds": 0}')
    assert rd.finished(0, "s").fingerprint == "fp"


def test_fingerprint_is_order_independent():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_metrics_rebuilt_from_manifests(tmp_path):
    rd = RunDir(tmp_path)
    finish(rd, 0, "evaluate", "x")
    rows = rd.rebuild_metrics([(0, "evaluate"), (1, "generate")])
    assert rows == read_jsonl(rd.metrics_path) and rows[0]["iteration"] == 0 and rows[0]["m"] == 1


def test_jsonl_roundtrip(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"a": "é"}, {"b": 2}])
    assert read_jsonl(tmp_path / "x.jsonl") == [{"a": "é"}, {"b": 2}]


def _hold(path, ready):
    with RunDir(path).lock():
        ready.set()
        time.sleep(60)


def test_lock_refuses_second_process_and_is_freed_when_holder_dies(tmp_path):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path, ready))
    holder.start()
    assert ready.wait(10)
    with pytest.raises(RunLockedError, match=f"pid {holder.pid} on host"):
        with RunDir(tmp_path).lock():
            pass
    os.kill(holder.pid, signal.SIGKILL)  # a stale lock: the kernel releases it with the process
    holder.join()
    with RunDir(tmp_path).lock():
        pass
