"""What made a result, beyond its config: the code that ran, the bytes of the data files and of the
model a run starts from, and the device and dtype it ran on. Stage fingerprints include all of it,
so neither the stage cache nor a resume ever serves a result computed by other code, other data,
other weights or another device (a constant version string is not a code hash).

Content hashes of large files are cached by (path, size, mtime) in ~/.cache/selfimprove, so a
538 MB checkpoint is read once, not at every run.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from .rundir import _file_digest as _digest  # the manifests' checksum: one way to hash a file

PACKAGE_DIR = Path(__file__).resolve().parent
# Source and package-data suffixes: everything that can change what a stage computes.
CODE_SUFFIXES = {".py", ".yaml", ".yml", ".txt", ".json", ".jinja"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
MODEL_META = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model")


def _cache_file() -> Path:
    root = os.environ.get("SELFIMPROVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "selfimprove")
    return Path(root) / "file_hashes.json"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes; files over 1 MiB are remembered by (path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    if st.st_size <= 1 << 20:
        return _digest(path)
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    value = _digest(path)
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")} | {key: value}
    try:  # a read-only home only costs the next run a re-read
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_path)
    except OSError:
        pass
    return value


def _tree_digest(files: Iterable[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for rel, path in sorted(files):
        h.update(rel.encode() + b"\0" + _digest(path).encode() + b"\0")
    return h.hexdigest()[:16]


def _code_files(root: Path, label: str):
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts:
            yield f"{label}/{p.relative_to(root)}", p


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """A hash of the package's sources and its shipped conf/ and recipes/ (~100 small files, a few
    ms). Whole-package rather than per stage: a stage calls helpers all over the package, and a
    finer hash that missed one would serve stale results, which is the bug this exists to prevent."""
    from .paths import CONF_DIR, RECIPES_DIR

    files = list(_code_files(PACKAGE_DIR, "selfimprove"))
    for label, root in (("conf", CONF_DIR), ("recipes", RECIPES_DIR)):
        if root.is_dir() and PACKAGE_DIR not in root.parents:  # a wheel ships them inside the package
            files += list(_code_files(root, label))
    return _tree_digest(files)


def model_identity(name_or_path: str | None) -> str | None:
    """What `model.name_or_path` points at: for a local folder, a hash of its config, tokenizer files
    and weight files' bytes (cached by mtime); for a hub id, the cached snapshot's commit if there is
    one, else the id itself (the hub serves the latest revision)."""
    if not name_or_path:
        return None
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        names = [n for n in MODEL_META if (folder / n).is_file()]
        names += sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES + (".index.json",)))
        h = hashlib.sha256()
        for n in names:
            h.update(n.encode() + b"\0" + file_digest(folder / n).encode() + b"\0")
        return f"folder:{h.hexdigest()[:16]}"
    if folder.is_file():
        return f"file:{file_digest(folder)[:16]}"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(name_or_path), "config.json")
        if isinstance(cached, str) and "/snapshots/" in cached:
            return f"hub:{name_or_path}@{cached.split('/snapshots/')[1].split('/')[0]}"
    except Exception:  # noqa: BLE001 - no hub library or a malformed id: the id is all we know
        pass
    return f"hub:{name_or_path}"


def data_files(section: Any, prefix: str = "") -> dict[str, str]:
    """Content hashes of the files a config section names by path (keys `path` or `*_path`, e.g.
    task.train_path, task.seed_path): an edited data file is a different input."""
    out: dict[str, str] = {}
    for key, value in (section or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(data_files(value, name + "."))
        elif isinstance(value, str) and (key == "path" or key.endswith("_path")) and Path(value).expanduser().is_file():
            out[name] = file_digest(Path(value).expanduser())[:16]
    return out


def environment(device: str, dtype: str) -> dict[str, str]:
    """The resolved device and dtype (not the `auto` the config says): a CPU fp32 run and a GPU bf16
    run of one config compute different numbers and must not share cache entries."""
    from .models import resolve_dtype

    kind = device.split(":")[0]
    return {"device": kind, "dtype": str(resolve_dtype(dtype, device)).replace("torch.", "")}
