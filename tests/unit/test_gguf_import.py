"""`selfimprove models import-gguf` on a tiny llama GGUF written here with the gguf package's writer
(tests/gguf_tiny.py): the folder it makes loads with plain `from_pretrained` and computes what
transformers' own GGUF loader computes; reruns are no-ops; bad inputs get advice and exit non-zero."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf")

from selfimprove.cli import main  # noqa: E402
from selfimprove.models.gguf_import import RECORD, ImportErrorWithAdvice, import_gguf  # noqa: E402
from tests.gguf_tiny import write_tiny_llama_gguf  # noqa: E402
from tests.cli_errors import cli_fails  # noqa: E402
from tests.helpers import CLI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    src = write_tiny_llama_gguf(d / "tiny.gguf")
    out = d / "tiny-hf"
    # the command a user types, in a fresh process
    proc = subprocess.run([*CLI, "models", "import-gguf", str(src), "--out", str(out)],
                          capture_output=True, text=True, cwd=d, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return src, out, proc


def test_import_makes_a_plain_hf_folder_equal_to_the_gguf(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out, proc = tiny
    assert "model.name_or_path=" in proc.stdout + proc.stderr
    # progress a user sees: the checksum's bytes, then each conversion step up to the last
    assert "checksum tiny.gguf" in proc.stderr and "kB" in proc.stderr and "[4/4] done" in proc.stderr
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", RECORD} <= names
    assert not list(out.parent.glob(".*importing*"))  # the temporary folder was renamed away
    assert not (out / "config.json").read_text().count("quantization_config")
    tok = AutoTokenizer.from_pretrained(out)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.config.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    reference = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    ids = tok("the theme", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-6)
    record = json.loads((out / RECORD).read_text())
    assert record["source"] == "tiny.gguf" and record["dtype"] == "float32" and record["architecture"] == "llama"


def test_rerun_is_a_no_op(tiny, capsys):
    src, out, _ = tiny
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    main(["models", "import-gguf", str(src), "--out", str(out)])
    assert "nothing to do" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before



def test_refuses_to_overwrite_another_model(tiny, tmp_path, capsys):
    _, out, _ = tiny
    other = write_tiny_llama_gguf(tmp_path / "other.gguf", seed=1)
    before = (out / "model.safetensors").read_bytes()
    err = cli_fails(["models", "import-gguf", str(other), "--out", str(out)], capsys)
    assert "refusing to overwrite" in err and "Choose a new folder" in err
    assert (out / "model.safetensors").read_bytes() == before
    # a folder of unrelated files is refused too; an empty one is used
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    assert "refusing" in cli_fails(["models", "import-gguf", str(other), "--out", str(tmp_path / "notes")], capsys)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_a_killed_import_leaves_no_model_and_the_next_one_cleans_up(tmp_path):
    """SIGKILLed after the weights and tokenizer were written, before the folder is renamed into
    place: --out does not exist (a run cannot load half a model); the next import removes the
    abandoned temporary folder and finishes."""
    import os

    from selfimprove.rundir import KILL_WHILE_WRITING

    src = write_tiny_llama_gguf(tmp_path / "t.gguf")
    out = tmp_path / "model"
    cmd = [*CLI, "models", "import-gguf", str(src), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(cmd, capture_output=True, text=True, env=env | {KILL_WHILE_WRITING: RECORD})
    assert killed.returncode == -9, killed.stderr
    abandoned = list(tmp_path.glob(".model.importing-*"))
    assert not out.exists() and len(abandoned) == 1 and (abandoned[0] / "model.safetensors").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert not list(tmp_path.glob(".model.importing-*")) and (out / "model.safetensors").exists()
    assert json.loads((out / RECORD).read_text())["source"] == "t.gguf"


def test_bfloat16_into_an_empty_folder(tmp_path):
    from safetensors import safe_open

    src = write_tiny_llama_gguf(tmp_path / "t.gguf", seed=2)
    (tmp_path / "empty").mkdir()
    out, imported = import_gguf(src, tmp_path / "empty", dtype="bfloat16")
    assert imported
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


def test_missing_truncated_and_foreign_files(tmp_path, capsys):
    err = cli_fails(["models", "import-gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o")], capsys)
    assert "does not exist" in err
    (tmp_path / "model.bin").write_bytes(b"PK\x03\x04 not a gguf")
    assert "is not a GGUF file" in cli_fails(["models", "import-gguf", str(tmp_path / "model.bin"), "--out",
                                           str(tmp_path / "o")], capsys)
    src = write_tiny_llama_gguf(tmp_path / "full.gguf")
    data = src.read_bytes()
    for cut in (len(data) - 1000, 200):  # tensor data cut short; header cut short
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        err = cli_fails(["models", "import-gguf", str(tmp_path / "cut.gguf"), "--out", str(tmp_path / "o")], capsys)
        assert "truncated" in err and "download it again" in err.lower()
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".*importing*"))


def test_unsupported_architecture(tmp_path, capsys):
    src = write_tiny_llama_gguf(tmp_path / "rwkv.gguf", arch="rwkv6")
    err = cli_fails(["models", "import-gguf", str(src), "--out", str(tmp_path / "o")], capsys)
    assert "'rwkv6' model" in err and "Supported:" in err and "llama" in err
    assert not (tmp_path / "o").exists()


def test_bad_dtype(tmp_path):
    src = write_tiny_llama_gguf(tmp_path / "t.gguf")
    with pytest.raises(ImportErrorWithAdvice, match="Choose one of: float32, bfloat16"):
        import_gguf(src, tmp_path / "o", dtype="int8")


def test_without_the_gguf_package_the_error_gives_the_install_line(tmp_path, monkeypatch, capsys):
    src = write_tiny_llama_gguf(tmp_path / "t.gguf")
    monkeypatch.setitem(sys.modules, "gguf", None)  # what `import gguf` sees when it is not installed
    err = cli_fails(["models", "import-gguf", str(src), "--out", str(tmp_path / "o")], capsys)
    assert 'pip install "selfimprove[gguf]"' in err


def test_concurrent_fetches_fetch_once(tmp_path, monkeypatch):
    """Two fetch-smollm2 calls at once (parallel test workers, sweep jobs sharing a cache): one
    downloads and imports, the other waits on the cache's lock and finds the folder done."""
    import threading
    import time

    from selfimprove.models import fetch

    calls = []

    def slow_fetch(cache, out, console):
        calls.append(out)
        time.sleep(0.5)  # the download and import; the other caller must be waiting meanwhile
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(fetch, "_fetch", slow_fetch)
    got = []
    threads = [threading.Thread(target=lambda: got.append(fetch.fetch_smollm2(cache=tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and got == [fetch.smollm2_folder(tmp_path)] * 2
