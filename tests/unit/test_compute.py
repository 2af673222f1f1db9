"""Compute accounting: the token counts of sampling and training match a hand count on a real
tiny model with known prompts and rows, and the pipeline's FLOPs formula is the documented one."""
import os
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from selfimprove import compute
from selfimprove.backends import SamplingParams
from selfimprove.backends.hf import batched_generate
from selfimprove.stages.dpo import DPOConfig
from selfimprove.stages.sft import SFTConfig
from selfimprove.models import load_model, load_tokenizer
from selfimprove.rundir import write_jsonl
from selfimprove.stages import get_stage
from selfimprove.tasks.arithmetic import Arithmetic, solution
from tests.helpers import TINY, stage_context

PROMPTS = ["Q: 1+2\nA:", "Q: 345+67\nA:", "Q: 9+9\nA:"]


def tiny(tmp_path):
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TINY, tmp_path / "base", seed=0)
    return path, load_model(str(path), "float32", "cpu"), load_tokenizer(str(path), padding_side="left")


def test_sample_counts_stop_at_the_first_eos():
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # 2 + 3 prompt tokens
    eos = 9
    seqs = torch.tensor([[0, 5, 5, 7, 9, 0, 0],   # prompt 3 wide, then 7, eos: 2 generated
                         [0, 5, 5, 7, 9, 0, 0],
                         [5, 5, 5, 7, 7, 7, 7],   # no eos: ran the full 4
                         [5, 5, 5, 9, 9, 9, 9]])  # eos first: 1
    assert compute.sample_counts(mask, seqs, 3, prefills=2, eos_ids=[eos]) == (10, 2 + 2 + 4 + 1)


def test_sampling_counts_match_a_hand_count(tmp_path, monkeypatch):
    """Batched, left-padded sampling with k=2 counts what one-prompt-at-a-time generation shows,
    less what is shared: every prompt token once (the k samples share its prefill, the prompts
    their common prefix), and each completion up to and including its eos."""
    _, model, tok = tiny(tmp_path)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=3)
    from selfimprove.backends import hf

    generated = []  # each decoding loop's new tokens, as plain lists
    real_decode = hf._decode

    def recording_decode(model, input_ids, *args, **kwargs):
        out = real_decode(model, input_ids, *args, **kwargs)
        generated.extend(row[input_ids.shape[1]:] for row in out.tolist())
        return out

    monkeypatch.setattr(hf, "_decode", recording_decode)
    with compute.metering() as meter:
        outs = batched_generate(model, tok, PROMPTS, params, batch_size=64)
    # every prompt token once, and the part all prompts share ("Q: ") once for the call
    ids = tok(PROMPTS)["input_ids"]
    shared = len(os.path.commonprefix(ids))
    assert shared > 0 and meter.counts["tokens_prompt"] == sum(map(len, ids)) - shared * (len(ids) - 1)
    # hand count of the completions: each row up to and including its first eos, else all of it
    # (re-encoding the returned texts would miss special tokens an untrained model samples, which
    # decoding drops, and the eos)
    hand = sum(row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row) for row in generated)
    assert len(generated) == len(PROMPTS) * params.n == sum(len(texts) for texts in outs)
    assert meter.counts["tokens_completion"] == hand
    assert meter.params == sum(p.numel() for p in model.parameters())


def test_greedy_counts_do_not_depend_on_batching(tmp_path):
    _, model, tok = tiny(tmp_path)
    params = SamplingParams(n=1, max_new_tokens=10)
    counts = []
    for batch_size in (1, 64):
        with compute.metering() as meter:
            batched_generate(model, tok, PROMPTS, params, batch_size=batch_size)
        counts.append(dict(meter.counts))
    assert counts[0] == counts[1]


def test_nested_meters_add_up_and_no_meter_is_a_no_op():
    compute.add(tokens_prompt=5)  # outside any meter: ignored
    with compute.metering() as outer:
        compute.add(tokens_prompt=1)
        with compute.metering() as inner:
            compute.add(tokens_completion=2)
            compute.note_params(100)
        assert inner.counts["tokens_completion"] == 2
    assert outer.metrics() == {"tokens_prompt": 1, "tokens_completion": 2, "params": 100}


def test_flops_formula_and_cumulative_rows():
    m = compute.with_flops({"params": 10, "tokens_prompt": 3, "tokens_completion": 4},
                           {"tokens_trained": 5, "tokens_reference": 1})
    assert m["flops"] == 2 * 10 * (3 + 4 + 1) + 6 * 10 * 5
    assert compute.with_flops({"tokens_prompt": 3}, {}).get("flops") is None  # no N: no estimate
    rows = compute.cumulative([{"flops": 10, "seconds": 1.0}, {"seconds": 2.5}, {"flops": 5, "seconds": 0.5}])
    assert [(r["cum_flops"], r["cum_seconds"]) for r in rows] == [(10, 1.0), (10, 3.5), (15, 4.0)]


def _ctx(tmp_path, name, cfg, inputs):
    return stage_context(name, cfg, tmp_path / "out", task=Arithmetic(SimpleNamespace()), inputs=inputs)


def test_sft_tokens_trained_match_a_hand_count(tmp_path):
    """All 4 rows in every batch (batch 4, 3 steps): each step trains prompt + completion + eos of each row."""
    path, _, tok = tiny(tmp_path)
    rows = [{"prompt": f"Q: {a}+{a}\nA:", "completion": solution(a, a)} for a in (3, 45, 678, 9)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    cfg = OmegaConf.structured(SFTConfig(steps=3, batch_size=4, save_steps=10))
    ctx = _ctx(tmp_path, "train", cfg, {"data": str(tmp_path / "data.jsonl"), "init": str(path)})
    ctx.out.mkdir()
    metrics = get_stage("sft").fn(ctx).metrics
    per_pass = sum(len(tok(r["prompt"] + r["completion"])["input_ids"]) + 1 for r in rows)  # +1: eos
    assert metrics["tokens_trained"] == 3 * per_pass
    assert metrics["params"] > 0


def test_dpo_counts_chosen_and_rejected_and_the_reference_forward(tmp_path):
    path, _, tok = tiny(tmp_path)
    rows = [{"prompt": f"Q: {a}+{a}\nA:", "chosen": solution(a, a), "rejected": solution(a, a + 1)} for a in (12, 7)]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = OmegaConf.structured(DPOConfig(steps=2, batch_size=2, save_steps=10))
    ctx = _ctx(tmp_path, "dpo", cfg, {"data": str(tmp_path / "pairs.jsonl"), "init": str(path)})
    ctx.out.mkdir()
    metrics = get_stage("dpo").fn(ctx).metrics
    per_pass = sum(len(tok(r["prompt"] + r[side])["input_ids"]) + 1 for r in rows for side in ("chosen", "rejected"))
    assert metrics["tokens_trained"] == 2 * per_pass
    assert metrics["tokens_reference"] == metrics["tokens_trained"]


def test_validation_sampling_during_training_is_counted_and_kept_for_resume(tmp_path):
    """ReST-EM's checkpoint selection samples the val split at every checkpoint (steps 2 and 4)."""
    path, _, tok = tiny(tmp_path)
    write_jsonl(tmp_path / "data.jsonl", [{"prompt": "Q: 1+1\nA:", "completion": solution(1, 1)}])
    write_jsonl(tmp_path / "val.jsonl", [{"id": "v0", "question": "12+3", "answer": "15"}])
    cfg = OmegaConf.structured(SFTConfig(steps=4, batch_size=1, save_steps=2, select_by_val=True, val_max_new_tokens=8))
    ctx = _ctx(tmp_path, "train", cfg, {"data": str(tmp_path / "data.jsonl"), "init": str(path),
                                        "val": str(tmp_path / "val.jsonl")})
    ctx.out.mkdir()
    metrics = get_stage("sft").fn(ctx).metrics
    assert metrics["tokens_prompt"] == 2 * len(tok("Q: 12+3\nA:")["input_ids"])
    assert 2 <= metrics["tokens_completion"] <= 2 * 8
    assert (ctx.out / "val_compute.json").exists()  # what a resumed stage adds back


def test_vllm_parameter_count_from_safetensors_headers_matches_the_model(tmp_path):
    """vLLM's engine does not expose the model: N is read from the checkpoint's headers instead."""
    from selfimprove.backends.vllm import checkpoint_params

    path, model, _ = tiny(tmp_path)
    assert checkpoint_params(path) == compute.count_params(model)
    assert checkpoint_params("org/not-a-folder") is None
