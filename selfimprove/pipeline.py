"""The outer loop: setup stages, then `iterations` x stages. Finished stages are skipped, an
unfinished one is redone (training from its last checkpoint), and nothing recipe-specific lives
here: recipes differ only in their stage lists and stage options."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import __version__, compute
from .config import RESUMABLE_CHANGES, UNFINGERPRINTED_STAGE_KEYS
from .context import RESUME_DIR, StageContext
from .errors import ConfigError, StageError
from .provenance import code_fingerprint, data_files, environment, model_identity
from .rundir import Manifest, RunDir, StageCache, fingerprint, write_failure, write_json
from .stages import PERSISTENT, get_stage
from .tracking import Console, WandbTracker


@dataclass(frozen=True)
class Artifact:
    path: str
    fingerprint: str  # of the stage that made it: downstream fingerprints chain through it


def _resolved(section):
    """The stage's section with every interpolation resolved once: a `${judge.min_score}` read in a
    loop over 12,000 rows otherwise costs ~1 ms a read (16 s of a debug Self-Rewarding run)."""
    out = OmegaConf.create(OmegaConf.to_container(section, resolve=True))
    OmegaConf.set_struct(out, True)
    return out


def _fingerprinted(section) -> dict:
    """A stage section as its fingerprint sees it: without the keys that do not change its output."""
    out = OmegaConf.to_container(section, resolve=True)
    for key in UNFINGERPRINTED_STAGE_KEYS:
        out.pop(key, None)
    return out


def log_event(rd: RunDir, event: str, **fields) -> None:
    """One line in the run's events.jsonl (append-only): run starts, stage starts and ends, with the
    Slurm job and restart count. `selfimprove.analysis.runs.redone_work` reads what a requeue cost."""
    import json

    row = {"t": round(time.time(), 3), "event": event, **fields}
    if os.environ.get("SLURM_JOB_ID"):
        row["slurm_job"] = os.environ["SLURM_JOB_ID"]
        row["slurm_restart"] = int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0)
    try:
        with open(rd.root / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    except OSError:
        pass  # a diagnostic: never the reason a run stops


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def _flatten(d, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def check_saved_config(rd: RunDir, new: dict) -> None:
    """Refuse to resume a run under a different config, unless `reconfigure=true`."""
    if not rd.config_path.exists() or new.get("reconfigure"):
        return
    old = OmegaConf.to_container(OmegaConf.load(rd.config_path))
    ignore = RESUMABLE_CHANGES + ("output_root", "run_name")
    a, b = _flatten(old), _flatten(new)
    diffs = [f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k) and not any(k == i or k.startswith(i + ".") for i in ignore)
             and k.rsplit(".", 1)[-1] not in UNFINGERPRINTED_STAGE_KEYS]
    if diffs:
        shown = "\n  ".join(diffs[:12]) + ("\n  ..." if len(diffs) > 12 else "")
        raise ConfigError(
            f"Run directory {rd.root} was started with a different config:\n  {shown}\n"
            "Rerun with the saved settings to resume it, pick a new run_name=..., or add reconfigure=true "
            "to keep the finished stages that these changes do not affect and recompute the rest."
        )


def check_saved_code(rd: RunDir, code: str, reconfigure: bool) -> None:
    """Refuse to resume a run that other code started, unless `reconfigure=true` (which then
    recomputes every stage: each stage's fingerprint holds the code hash)."""
    if reconfigure or not rd.info_path.exists():
        return
    import json

    try:
        saved = json.loads(rd.info_path.read_text())
    except ValueError:
        return
    if saved.get("code_fingerprint") != code:
        started = saved.get("code_version", "an unknown version")
        raise ConfigError(
            f"Run directory {rd.root} was started by different code ({started}, code hash "
            f"{saved.get('code_fingerprint', 'not recorded')}; this is {code_version()}, code hash {code}). "
            "Its stages were computed by that code, so they cannot be resumed as if this code had made them. "
            "Pick a new run_name=..., or add reconfigure=true to recompute its stages with this code."
        )


def stage_plan(cfg) -> list[tuple[int, str]]:
    last_only = set(cfg.get("last_iteration_only", []))  # e.g. V-STaR's verifier, trained once at the end
    return [(0, s) for s in cfg.setup] + [(i, s) for i in range(1, cfg.iterations + 1) for s in cfg.stages
                                          if i == cfg.iterations or s not in last_only]


def run_pipeline(cfg: DictConfig, run_dir: Path, overrides: list[str], choices: dict, console: Console,
                 sweep: str | None = None) -> int:
    """Run (or resume) `cfg`, a typed config that `config.validate` passed (config.compose.prepared)."""
    from .models import resolve_device
    from .tasks import build_task

    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rd = RunDir(run_dir)
    with rd.lock():
        check_saved_config(rd, resolved)
        check_saved_code(rd, code_fingerprint(), bool(cfg.get("reconfigure")))
        rd.config_path.write_text(OmegaConf.to_yaml(resolved))
        info = {"recipe": choices.get("recipe"), "choices": choices, "overrides": overrides,
                "code_version": code_version(), "code_fingerprint": code_fingerprint(),
                "started_at": time.time(), "status": "running"}
        write_json(rd.info_path, info)
        log_event(rd, "run_start", pid=os.getpid())
        tracker = WandbTracker(cfg.tracking, rd.root, resolved, name=rd.root.name, group=sweep)
        plan = stage_plan(cfg)
        try:
            ran = _loop(cfg, rd, plan, build_task(cfg.task), resolve_device(cfg.device), console, tracker, info)
        except SystemExit:  # Slurm preemption/time limit (submitit requeues the job): it resumes later
            write_json(rd.info_path, info | {"status": "interrupted"})
            raise
        except KeyboardInterrupt:
            write_json(rd.info_path, info | {"status": "interrupted"})
            console.log(f"[yellow]Interrupted.[/] Finished stages are kept in {rd.root}; run the same command "
                        f"again (run_name={rd.root.name}) to resume.")
            return 130
        except BaseException as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            try:
                write_json(rd.info_path, info | {"status": "failed", "error": f"{type(exc).__name__}: {first}",
                                                 "traceback": traceback.format_exc()[-4000:]})
            except OSError:
                pass  # a full disk cannot take the status either; the error below says what happened
            raise
        finally:
            tracker.finish()
        write_json(rd.info_path, info | {"status": "finished", "finished_at": time.time()})
        if ran == 0:
            console.iteration_table(rd.rebuild_metrics(plan), list(cfg.tracking.table))
            console.log(f"Nothing to do: all {len(plan)} stages of {rd.root} are already finished "
                        f"(metrics in {rd.metrics_path}).")
        else:
            console.log(f"[green]Done.[/] {ran} stage(s) ran or were reused; results in {rd.root}")
        return 0


def _resolve_inputs(kind, section, artifacts: dict[str, Artifact], name: str, it: int):
    """Paths and fingerprints of the artifacts a stage reads ('?' marks optional ones)."""
    inputs, fps = {}, {}
    for role, wanted in kind.inputs(section).items():
        art = wanted.rstrip("?")
        if art in artifacts:
            inputs[role], fps[role] = artifacts[art].path, artifacts[art].fingerprint
        elif wanted.endswith("?"):
            inputs[role] = None
        else:
            raise ConfigError(f"Stage '{name}' (iteration {it}) needs the artifact '{art}', which no earlier "
                              f"stage produced. Check the order of the `setup`/`stages` lists.")
    return inputs, fps


def _loop(cfg, rd: RunDir, plan, task, device: str, console: Console, tracker: WandbTracker, info: dict) -> int:
    cache = StageCache(Path(cfg.output_root).expanduser().resolve() / ".stage_cache" if cfg.cache else None)
    artifacts: dict[str, Artifact] = {}
    model_id = model_identity(cfg.model.name_or_path)
    if cfg.model.name_or_path:  # a pretrained model is the base and first policy until a stage trains one
        artifacts["base"] = artifacts["policy"] = Artifact(cfg.model.name_or_path, fingerprint(model_id))
    shared = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "task")}
    # Beyond the config: the code, the data files' bytes, the model's identity, the device and dtype.
    shared["provenance"] = {"code": code_fingerprint(), "model": model_id, "task_files": data_files(shared["task"]),
                            **environment(device, cfg.model.dtype)}
    ran, ran_this_iteration, iteration = 0, False, 0
    for index, (it, name) in enumerate(plan):
        if it != iteration:  # datasets made in an iteration expire with it; models carry over
            artifacts = {k: v for k, v in artifacts.items() if k in PERSISTENT}
            if iteration == 0 and "policy" in artifacts:
                artifacts["base"] = artifacts["policy"]  # what setup trained is the base model
            iteration = it
        section = cfg[name]
        if section.enabled:
            kind = get_stage(section.kind)
            inputs, fps = _resolve_inputs(kind, section, artifacts, name, it)
            # The fingerprint chains through the inputs' fingerprints: a change upstream reaches
            # every stage downstream. Only stages that sample depend on the backend settings.
            stage_cfg = _fingerprinted(section)
            fp = fingerprint({"kind": section.kind, "stage": name, "cfg": stage_cfg, "files": data_files(stage_cfg),
                              "iteration": it, "seed": cfg.seed, "inputs": fps, **shared,
                              "backend": OmegaConf.to_container(cfg.backend) if "model" in inputs else None})
            manifest = rd.finished(it, name)
            produced = True
            if manifest is not None and manifest.fingerprint == fp:
                console.log(f"[dim]iter {it} {name}: finished earlier, skipped[/]")
                produced = False
            elif (cached := cache.lookup(fp)) is not None:
                manifest = StageCache.restore(cached, rd, it, name, fp)
                console.log(f"[cyan]iter {it} {name}: reused the identical stage {cached}[/]")
            else:
                if manifest is not None:
                    console.log(f"[yellow]iter {it} {name}: config or inputs changed since it ran; recomputing[/]")
                write_json(rd.info_path, info | {"stage": name, "iteration": it})
                ctx = StageContext(name=name, iteration=it, seed=int(fingerprint([cfg.seed, it, name]), 16) % 2**31,
                                   cfg=_resolved(section), task=task, model_cfg=cfg.model, backend_cfg=cfg.backend,
                                   device=device, inputs=inputs, out=rd.begin(it, name, fp), ui=console,
                                   sharding=cfg.sharding)
                log_event(rd, "stage_start", iteration=it, stage=name)
                manifest = _run_stage(kind, ctx, fp, rd, console)
                log_event(rd, "stage_done", iteration=it, stage=name, seconds=round(manifest.seconds, 2))
                tracker.log_stage(it, name, manifest.metrics)
            if produced:
                ran, ran_this_iteration = ran + 1, True
            final = rd.stage_dir(it, name)
            cache.store(fp, final)
            for art, rel in manifest.artifacts.items():
                artifacts[art] = Artifact(str(final / rel), fp)
        last_of_iteration = index + 1 == len(plan) or plan[index + 1][0] != it
        if last_of_iteration:
            rows = rd.rebuild_metrics(plan)
            if ran_this_iteration:
                console.iteration_table(rows, list(cfg.tracking.table))
            ran_this_iteration = False
    return ran


def _run_stage(kind, ctx: StageContext, fp: str, rd: RunDir, console: Console) -> Manifest:
    console.log(f"[bold]iter {ctx.iteration} {ctx.name}[/] ({ctx.cfg.kind})")
    start = time.time()
    try:
        with compute.metering() as meter:  # the samplers and trainers add their token counts
            result = kind.fn(ctx)
        result.metrics = compute.with_flops(meter.metrics(), result.metrics)
        manifest = Manifest(stage=ctx.name, kind=ctx.cfg.kind, iteration=ctx.iteration, fingerprint=fp,
                            artifacts=result.artifacts, metrics=result.metrics, seconds=time.time() - start)
        shutil.rmtree(ctx.out / RESUME_DIR, ignore_errors=True)
        rd.commit(manifest)
    except Exception as exc:
        if (why := write_failure(exc)) is None:
            raise
        free = shutil.disk_usage(rd.root).free / 2**20
        raise StageError(
            f"iter {ctx.iteration} {ctx.name}: a write under {ctx.out} failed: {why} ({free:.1f} MiB free "
            f"there). Every finished stage is "
            f"intact; this stage's work folder keeps its last complete checkpoint. Free space (df -h {rd.root}) "
            f"or pick another output_root=..., then rerun the same command to resume."
        ) from exc
    shown = ", ".join(f"{k}={v}" for k, v in result.metrics.items() if not isinstance(v, (dict, list)))
    console.log(f"  {shown}")
    return manifest
