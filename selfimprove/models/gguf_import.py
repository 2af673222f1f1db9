"""`selfimprove models import-gguf`: a GGUF file (llama.cpp's format, often the only copy of a model
people have lying around) -> a standard Hugging Face folder (safetensors, tokenizer, chat template)
that every stage, `from_pretrained` and vLLM load without conversion.

transformers reads GGUF itself (`from_pretrained(dir, gguf_file=...)`, needs the `gguf` package)
and dequantizes the weights, but refuses to `save_pretrained` the result ("quantized with gguf,
not serializable"). So the weights are copied into a plain model built from the same config, which
saves normally. The folder is written under a temporary name and renamed into place, so a killed
import never leaves a half-written model where a run would load it; a small record of the source
file's checksum makes a repeated import a no-op and lets us refuse to overwrite another model.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from selfimprove.rundir import write_atomic

RECORD = "selfimprove_import.json"  # what this folder was imported from (checksum, dtype)
DTYPES = ("float32", "bfloat16")
INSTALL_LINE = 'pip install "selfimprove[gguf]"   (or: pip install gguf)'


class ImportErrorWithAdvice(Exception):
    """A user-facing failure: the message says what is wrong and what to do instead."""


def _require_gguf():
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportErrorWithAdvice(f"reading GGUF files needs the `gguf` package, which is not installed. "
                                    f"Install it with: {INSTALL_LINE}") from None


def _sha256(path: Path, progress=None, task=None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            if progress is not None:
                progress.advance(task, len(chunk))
    return h.hexdigest()


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    # the mapping table also holds the non-architecture sections 'general' and 'tokenizer'
    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def inspect_gguf(path: Path) -> dict:
    """Header facts (architecture, name, tensor count), checking the file is a whole, readable GGUF
    of an architecture transformers can load. Raises ImportErrorWithAdvice otherwise."""
    if not path.is_file():
        raise ImportErrorWithAdvice(f"GGUF file '{path}' does not exist (or is not a file). Give the path of a "
                                    ".gguf file, e.g. `selfimprove models import-gguf ~/models/model.Q4_K_M.gguf --out DIR`.")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ImportErrorWithAdvice(f"'{path}' is not a GGUF file (it does not start with the bytes 'GGUF'). "
                                    "Convert the model to GGUF first, or load a Hugging Face folder directly "
                                    "with model.name_or_path=DIR.")
    _require_gguf()
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        arch = reader.fields["general.architecture"].contents()
        name_field = reader.fields.get("general.name")
        name = name_field.contents() if name_field is not None else path.stem
        # the reader maps tensors lazily: check the last tensor's bytes lie inside the file
        end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    except Exception as exc:  # the gguf reader raises ValueError/IndexError/KeyError on damaged files
        raise ImportErrorWithAdvice(
            f"'{path}' could not be read as GGUF ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "The file is probably truncated or corrupt: download it again.") from None
    size = path.stat().st_size
    if end > size:
        raise ImportErrorWithAdvice(f"'{path}' is truncated: its tensors need {end:,} bytes but the file has "
                                    f"{size:,}. Download it again.")
    supported = supported_architectures()
    if arch not in supported:
        raise ImportErrorWithAdvice(
            f"'{path}' holds a '{arch}' model, an architecture this version of transformers cannot load from "
            f"GGUF. Supported: {', '.join(supported)}. Upgrade transformers (`pip install -U transformers`) "
            "or get the model as a Hugging Face folder instead.")
    return {"architecture": arch, "name": name, "tensors": len(reader.tensors), "bytes": size}


def _folder_state(out: Path, record: dict) -> str:
    """'absent' | 'empty' | 'same' (this import was done already) | 'other' (holds something else)."""
    if not out.exists():
        return "absent"
    if not out.is_dir():
        raise ImportErrorWithAdvice(f"--out '{out}' exists and is a file, not a folder. Choose another --out.")
    if not any(out.iterdir()):
        return "empty"
    try:
        have = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return "other"
    same = all(have.get(k) == record[k] for k in ("sha256", "dtype"))
    return "same" if same and (out / "config.json").is_file() else "other"


def import_gguf(gguf_path: str | Path, out: str | Path, dtype: str = "float32", console=None) -> tuple[Path, bool]:
    """Import `gguf_path` into the folder `out`. Returns (out, imported): imported is False when
    `out` already held this very import (nothing written)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    if dtype not in DTYPES:
        raise ImportErrorWithAdvice(f"--dtype {dtype} is not supported. Choose one of: {', '.join(DTYPES)} "
                                    "(float32 on CPU; bfloat16 halves the folder for GPUs).")
    src, out = Path(gguf_path).expanduser().resolve(), Path(out).expanduser().resolve()
    facts = inspect_gguf(src)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        t = progress.add_task(f"checksum {src.name}", total=facts["bytes"])
        record = {"source": src.name, "sha256": _sha256(src, progress, t), "dtype": dtype,
                  "architecture": facts["architecture"], "name": facts["name"]}
    state = _folder_state(out, record)
    if state == "same":
        console.print(f"{out} already holds {src.name} ({dtype}): nothing to do.")
        return out, False
    if state == "other":
        raise ImportErrorWithAdvice(
            f"--out '{out}' is not empty and holds another model (or a different dtype of this one); refusing "
            "to overwrite it. Choose a new folder for --out, or delete that one first if you no longer need it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_imports(out)
    tmp = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(src, tmp, dtype, facts, console)
        write_atomic(tmp / RECORD, json.dumps(record, indent=1) + "\n")
        if state == "empty":
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"imported {facts['name']} ({facts['architecture']}) into {out}: load it with "
                  f"model.name_or_path={out}")
    return out, True


def _remove_abandoned_imports(out: Path) -> None:
    """A killed import leaves its temporary folder (hundreds of MB) next to --out; the next import
    into the same --out removes those whose process is gone, and leaves a live one alone."""
    for stale in out.parent.glob(f".{out.name}.importing-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True


def _convert(src: Path, dest: Path, dtype: str, facts: dict, console) -> None:
    import torch
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch_dtype = getattr(torch, dtype)
    steps = ["tokenizer and chat template", f"dequantize {facts['tensors']} tensors to {dtype}",
             "copy into a plain model", "write safetensors"]
    with Progress(SpinnerColumn(), TextColumn("[{task.completed}/{task.total}] {task.description}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(steps[0], total=len(steps))
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        progress.update(task, advance=1, description=steps[1])
        loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch_dtype)
        progress.update(task, advance=1, description=steps[2])
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the GGUF marker is what makes save_pretrained refuse
        config.dtype = torch_dtype
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        state = {k: v.to(torch_dtype) for k, v in loaded.state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        del loaded, state
        model.tie_weights()
        # tied weights (lm_head = embeddings) are legitimately absent from the state dict
        missing = [k for k in missing if model.get_parameter(k).is_meta] if missing else []
        if missing or unexpected:
            raise ImportErrorWithAdvice(f"'{src}' does not map onto {type(model).__name__}: missing {missing[:5]}, "
                                        f"unexpected {unexpected[:5]}. This GGUF variant is not supported.")
        model.generation_config.bos_token_id = tok.bos_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        progress.update(task, advance=1, description=steps[3])
        dest.mkdir(parents=True)
        model.save_pretrained(str(dest), safe_serialization=True)
        tok.save_pretrained(str(dest))
        progress.update(task, advance=1, description="done")
