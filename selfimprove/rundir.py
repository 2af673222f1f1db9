"""The run directory: layout, atomic writes, stage manifests (done-markers) and the run lock.

    <run>/config.yaml            resolved config of the latest invocation
    <run>/run.json               recipe, overrides, code version, status
    <run>/metrics.jsonl          one row per finished stage, rebuilt from the manifests
    <run>/iter_00/<stage>/       a finished stage: its artifacts and manifest.json (written last)
    <run>/iter_01/.<stage>.partial/   an unfinished stage (e.g. trainer checkpoints); redone on resume
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

MANIFEST = "manifest.json"


class RunLockedError(RuntimeError):
    pass


# Failpoint for the fault-injection suite: SIGKILL this process halfway through writing the file
# whose path ends with this value (e.g. "iter_02/.score.partial/scored.jsonl"). Inert when unset.
KILL_WHILE_WRITING = "SELFIMPROVE_KILL_WHILE_WRITING"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary sibling, fsync, rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    data = data.encode() if isinstance(data, str) else data
    with open(tmp, "wb") as f:
        if (target := os.environ.get(KILL_WHILE_WRITING)) and str(path).endswith(target):
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_files(root: Path) -> dict[str, dict]:
    """Size and checksum of every file under root (the manifest's integrity record)."""
    return {
        str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": _file_digest(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


# Files up to this size are checksummed again on resume (datasets, metrics, small models); larger
# ones (real model shards) are checked by size only, so resuming a 7B run does not reread 15 GB.
VERIFY_MAX_BYTES = 256 << 20


def intact(stage_dir: Path) -> "Manifest | None":
    """The manifest of a finished stage folder if every file it lists is there with its recorded
    size and (up to VERIFY_MAX_BYTES) its recorded sha256; else None and the stage is redone."""
    if not (stage_dir / MANIFEST).exists():
        return None
    manifest = Manifest.load(stage_dir / MANIFEST)
    for rel, meta in manifest.files.items():
        p = stage_dir / rel
        if not p.is_file() or p.stat().st_size != meta["bytes"]:
            return None  # truncated or missing
        if meta["bytes"] <= VERIFY_MAX_BYTES and _file_digest(p) != meta["sha256"]:
            return None  # same size, different bytes: corrupted
    return manifest


# errnos that mean "this disk will not take the write": full, quota, file size limit, read-only, denied
WRITE_ERRNOS = {28: "No space left on device", 122: "Disk quota exceeded", 27: "File too large",
                30: "Read-only file system", 13: "Permission denied", 5: "Input/output error"}


TORCH_WRITE_FAILURES = ("file write failed", "iostream error", "inline_container.cc", "PytorchStreamWriter")


def write_failure(exc: BaseException) -> str | None:
    """What went wrong if `exc` (or what caused it) is a failed write, else None. Libraries report
    it differently: OSError (json, shutil), SafetensorError "... (os error 28)", torch.save's
    RuntimeError "iostream error" or "unexpected pos" (which name no cause)."""
    import re

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or WRITE_ERRNOS[exc.errno]}"
        m = re.search(r"os error (\d+)", str(exc))
        if m and int(m.group(1)) in WRITE_ERRNOS:
            return WRITE_ERRNOS[int(m.group(1))]
        if any(sign in str(exc) for sign in TORCH_WRITE_FAILURES):  # torch.save names no cause
            return f"torch.save could not write a checkpoint ({str(exc).strip().splitlines()[0][:120]})"
        exc = exc.__cause__ or exc.__context__
    return None


@dataclass
class Manifest:
    stage: str
    kind: str
    iteration: int
    fingerprint: str
    artifacts: dict[str, str]  # artifact name -> path relative to the stage folder
    metrics: dict[str, Any]
    seconds: float
    files: dict[str, dict] = field(default_factory=dict)
    finished_at: float = field(default_factory=time.time)
    reused_from: str | None = None  # a stage of another run with the same fingerprint (cache hit)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        return cls(**json.loads(path.read_text()))


class RunDir:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.metrics_path = self.root / "metrics.jsonl"
        self.config_path = self.root / "config.yaml"
        self.info_path = self.root / "run.json"

    def stage_dir(self, iteration: int, stage: str) -> Path:
        return self.root / f"iter_{iteration:02d}" / stage

    def partial_dir(self, iteration: int, stage: str) -> Path:
        return self.root / f"iter_{iteration:02d}" / f".{stage}.partial"

    # ------------------------------------------------------------------ done-markers
    def finished(self, iteration: int, stage: str) -> Manifest | None:
        """The manifest of a finished stage whose files are intact, else None."""
        final = self.stage_dir(iteration, stage)
        partial = self.partial_dir(iteration, stage)
        if not (final / MANIFEST).exists() and (partial / MANIFEST).exists():
            os.replace(partial, final)  # killed between writing the manifest and the rename
        return intact(final)

    def begin(self, iteration: int, stage: str, fp: str) -> Path:
        """The working folder for a stage. A partial folder from an interrupted attempt with the
        same fingerprint is kept (trainer checkpoints resume from it); anything else is cleared."""
        final, partial = self.stage_dir(iteration, stage), self.partial_dir(iteration, stage)
        if final.exists():
            shutil.rmtree(final)
        stamp = partial / ".fingerprint"
        if partial.exists() and not (stamp.exists() and stamp.read_text() == fp):
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        write_atomic(stamp, fp)
        return partial

    def commit(self, manifest: Manifest) -> Path:
        partial = self.partial_dir(manifest.iteration, manifest.stage)
        (partial / ".fingerprint").unlink(missing_ok=True)
        manifest.files = describe_files(partial)
        write_json(partial / MANIFEST, manifest.__dict__)  # the done-marker, written last
        final = self.stage_dir(manifest.iteration, manifest.stage)
        os.replace(partial, final)
        return final

    # ------------------------------------------------------------------ metrics
    def rebuild_metrics(self, order: list[tuple[int, str]]) -> list[dict]:
        """metrics.jsonl is derived from the manifests, so it can never disagree with them. Rows
        also carry the run's cumulative FLOPs and seconds up to and including the stage."""
        from .compute import cumulative

        rows = []
        for iteration, stage in order:
            path = self.stage_dir(iteration, stage) / MANIFEST
            if path.exists():
                m = Manifest.load(path)
                rows.append({"iteration": iteration, "stage": stage, **m.metrics, "seconds": round(m.seconds, 2)})
        cumulative(rows)
        write_jsonl(self.metrics_path, rows)
        return rows

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer per run. flock is released by the kernel when the holder dies, so a lock
        left by a killed process is taken over without any staleness heuristics."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1024).decode(errors="replace").strip() or "{}"
                info = json.loads(holder) if holder.startswith("{") else {}
                raise RunLockedError(
                    f"Run directory {self.root} is in use by another selfimprove process "
                    f"(pid {info.get('pid', '?')} on host {info.get('host', '?')}). Wait for it to finish, "
                    f"stop it, or choose another run_name=."
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
            yield
        finally:
            os.close(fd)  # closing releases the flock


class StageCache:
    """Finished stages shared by the runs of one output root, keyed by fingerprint (the stage's
    config, its inputs' fingerprints, the seed, the code hash, data files, model and device: see
    provenance.py). An entry is a link to the
    stage folder of the run that made it; a hit hard-links the files into the new run."""

    def __init__(self, root: Path | None):
        self.root = root

    def lookup(self, fp: str) -> Path | None:
        if self.root is None:
            return None
        link = self.root / fp
        if not link.is_symlink():
            return None
        target = Path(os.readlink(link))
        manifest = intact(target) if target.is_dir() else None
        return target if manifest is not None and manifest.fingerprint == fp else None

    def store(self, fp: str, stage_dir: Path) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{fp}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(stage_dir.resolve(), tmp)
        os.replace(tmp, self.root / fp)

    @staticmethod
    def restore(source: Path, rd: "RunDir", iteration: int, stage: str, fp: str) -> Manifest:
        partial = rd.begin(iteration, stage, fp)

        def link(src, dst):
            try:
                os.link(src, dst)  # no extra disk; files are never modified in place
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source, partial, dirs_exist_ok=True, copy_function=link)
        manifest = Manifest.load(partial / MANIFEST)
        (partial / MANIFEST).unlink()
        manifest.reused_from = str(source)
        rd.commit(manifest)
        return manifest
