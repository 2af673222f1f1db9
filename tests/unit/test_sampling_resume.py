"""A killed sampling stage resumes at its first missing chunk and samples exactly what an
uninterrupted stage would (real tiny model, real batched transformers sampling)."""
import contextlib
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from selfimprove import compute
from selfimprove.config import HFBackendConfig
from selfimprove.stages.generate import GenerateConfig
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import get_stage
from selfimprove.tasks.arithmetic import Arithmetic
from selfimprove.tracking import Console
from tests.helpers import TINY, stage_context



class Killed(Exception):
    pass


class KillAfter(Console):
    """Raises from the progress callback once `at` prompts are done: a kill mid-stage."""

    def __init__(self, at):
        super().__init__(quiet=True)
        self.at, self.done = at, 0

    def progress(self, description, total, completed=0):
        def advance(n=1):
            self.done += n
            if self.done >= self.at:
                raise Killed

        return contextlib.nullcontext(advance)


def context(tmp_path, model, ui, chunk):
    write_jsonl(tmp_path / "problems.jsonl", [{"id": f"p{i}", "question": f"{i}+{i + 3}", "answer": str(2 * i + 3)}
                                              for i in range(10)])
    cfg = OmegaConf.structured(GenerateConfig(k=2, temperature=1.0, max_new_tokens=12))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return stage_context("generate", cfg, out, seed=5, task=Arithmetic(SimpleNamespace()),
                         backend_cfg=OmegaConf.structured(HFBackendConfig(batch_size=4, chunk_prompts=chunk)),
                         inputs={"model": str(model), "problems": str(tmp_path / "problems.jsonl")}, ui=ui)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    return save_tiny(TINY, tmp_path_factory.mktemp("m") / "tiny", seed=0)


def test_killed_generate_resumes_at_the_first_missing_chunk(tmp_path, model):
    ref = context(tmp_path / "ref", model, Console(quiet=True), chunk=4)
    with compute.metering() as uninterrupted:
        get_stage("generate").fn(ref)
    ctx = context(tmp_path / "cut", model, KillAfter(at=9), chunk=4)
    with pytest.raises(Killed):
        get_stage("generate").fn(ctx)  # chunks 0 and 1 (8 prompts) saved; chunk 2 lost mid-way
    assert sorted(p.name for p in ctx.resume_dir.iterdir()) == ["sampling-00000.json", "sampling-00001.json"]
    ctx.ui = Console(quiet=True)
    with compute.metering() as resumed:
        result = get_stage("generate").fn(ctx)
    assert result.metrics["resumed_chunks"] == 2 and result.metrics["samples"] == 20
    assert read_jsonl(ctx.out / "samples.jsonl") == read_jsonl(ref.out / "samples.jsonl")
    # the saved chunks' token counts come back with them: the resumed stage reports the same compute
    assert resumed.metrics() == uninterrupted.metrics() and uninterrupted.counts["tokens_completion"] > 0


def test_one_chunk_samples_like_one_engine_call(tmp_path, model):
    """A chunk as large as the prompt list is the unchunked call: same seeds, same samples."""
    a = context(tmp_path / "a", model, Console(quiet=True), chunk=10)
    b = context(tmp_path / "b", model, Console(quiet=True), chunk=2048)
    get_stage("generate").fn(a)
    get_stage("generate").fn(b)
    assert read_jsonl(a.out / "samples.jsonl") == read_jsonl(b.out / "samples.jsonl")
