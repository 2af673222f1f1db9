"""Sampling spread over shard jobs (local processes through submitit): the merged samples equal a
one-process run, a shard count above the prompts is clamped with a warning, and a shard that
died redoes only the chunks it left missing. Real tiny model, real processes."""
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from selfimprove import sharding
from selfimprove.config import HFBackendConfig, ShardingConfig
from selfimprove.stages.evaluate import EvaluateConfig
from selfimprove.stages.generate import GenerateConfig
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import get_stage
from selfimprove.tasks.arithmetic import Arithmetic
from selfimprove.tracking import Console
from tests.helpers import TINY, stage_context



class Recording(Console):
    def __init__(self):
        super().__init__(quiet=True)
        self.lines = []

    def log(self, *args, **kwargs):
        self.lines.append(" ".join(map(str, args)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    return save_tiny(TINY, tmp_path_factory.mktemp("m") / "tiny", seed=0)


def context(tmp_path, model, shards, chunk=3, kind="generate", n=10, ui=None):
    write_jsonl(tmp_path / "problems.jsonl", [{"id": f"p{i}", "question": f"{i}+{i + 3}", "answer": str(2 * i + 3),
                                               "difficulty": 1} for i in range(n)])
    if kind == "generate":
        cfg = OmegaConf.structured(GenerateConfig(k=2, temperature=1.0, max_new_tokens=12, shards=shards))
    else:
        cfg = OmegaConf.structured(EvaluateConfig(num_samples=0, pass_k=[], max_new_tokens=12, shards=shards))
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    return stage_context(kind, cfg, out, seed=5, task=Arithmetic(SimpleNamespace()),
                         backend_cfg=OmegaConf.structured(HFBackendConfig(batch_size=4, chunk_prompts=chunk)),
                         inputs={"model": str(model), "problems": str(tmp_path / "problems.jsonl")}, ui=ui or Recording(),
                         sharding=OmegaConf.structured(ShardingConfig(launcher="local", threads=1)))


def test_two_local_shards_sample_what_one_process_samples(tmp_path, model):
    one = context(tmp_path / "one", model, shards=1)
    two = context(tmp_path / "two", model, shards=2)
    get_stage("generate").fn(one)
    result = get_stage("generate").fn(two)
    assert read_jsonl(two.out / "samples.jsonl") == read_jsonl(one.out / "samples.jsonl")
    assert result.metrics["shards"] == 2 and result.metrics["shard_jobs"] == 2 and result.metrics["samples"] == 20
    assert result.metrics["shard_sample_s"] >= 0  # where the shards' time went is reported (a fast run rounds to 0)
    # every chunk was sampled by a shard job (4 chunks of 3 prompts), none by this process
    assert "resumed_chunks" not in result.metrics
    assert any("4 chunk(s) in 2 local shard job(s)" in line for line in two.ui.lines)


def test_sharded_evaluate_matches_one_process(tmp_path, model):
    one = context(tmp_path / "one", model, shards=1, kind="evaluate")
    two = context(tmp_path / "two", model, shards=2, kind="evaluate")
    a = get_stage("evaluate").fn(one)
    b = get_stage("evaluate").fn(two)
    assert read_jsonl(two.out / "eval.jsonl") == read_jsonl(one.out / "eval.jsonl")
    assert a.metrics["accuracy"] == b.metrics["accuracy"] and b.metrics["shard_jobs"] == 2


def test_more_shards_than_prompts_is_clamped_with_a_warning(tmp_path, model):
    ctx = context(tmp_path, model, shards=8, chunk=1, n=1)
    result = get_stage("generate").fn(ctx)
    assert "shards" not in result.metrics  # one shard: sampled here, no job started
    assert any("shards=8 but there are only 1 prompt(s): using 1 shard(s)." in line for line in ctx.ui.lines)
    assert len(read_jsonl(ctx.out / "samples.jsonl")) == 2


def test_plan_shards_says_how_to_split_further():
    assert sharding.plan_shards(2, 4, 3, 10) == (2, None)
    shards, warning = sharding.plan_shards(4, 1, 2048, 100)
    assert shards == 1 and "backend.chunk_prompts=25" in warning


def test_a_dead_shard_redoes_only_its_missing_chunks(tmp_path, model):
    ref = context(tmp_path / "ref", model, shards=1)
    get_stage("generate").fn(ref)
    ctx = context(tmp_path / "cut", model, shards=2)
    # shard 1 of 2 (chunks 1 and 3) died after its first chunk: run that much of it for real
    prompts = [ctx.task.prompt(p) for p in read_jsonl(ctx.inputs["problems"])]
    from selfimprove.backends import SamplingParams

    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=ctx.seed)
    job = {"resume_dir": str(ctx.resume_dir), "tag": "sampling", "size": 3, "prompts": prompts, "params": params,
           "task": ctx.task, "model_path": ctx.inputs["model"], "backend_cfg": ctx.backend_cfg,
           "model_cfg": ctx.model_cfg, "device": "cpu", "threads": 1}
    assert sharding.sample_shard(job | {"chunks": [1]})["chunks"] == 1
    before = (ctx.resume_dir / "sampling-00001.json").stat().st_mtime_ns
    result = get_stage("generate").fn(ctx)
    assert (ctx.resume_dir / "sampling-00001.json").stat().st_mtime_ns == before  # not sampled again
    assert result.metrics["resumed_chunks"] == 1 and result.metrics["shard_jobs"] == 2
    assert any("3 chunk(s) in 2 local shard job(s)" in line for line in ctx.ui.lines)
    assert read_jsonl(ctx.out / "samples.jsonl") == read_jsonl(ref.out / "samples.jsonl")
    # a shard handed only chunks that exist does nothing
    assert sharding.sample_shard(job | {"chunks": [1]})["chunks"] == 0
