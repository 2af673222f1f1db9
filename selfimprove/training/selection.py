"""Choosing a train stage's best checkpoint by its greedy reward on the validation problems
(`select_by_val`), instead of publishing the last one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import compute
from ..models import load_model
from ..rundir import read_jsonl, write_json
from ..context import StageContext
from .launch import barrier, rank


class ValSelector:
    """Greedy validation reward at each checkpoint; the best weights are saved aside. The history
    lives in the stage folder, so a resumed stage remembers what it had already measured.

    With several training processes (DDP: each holds the whole model) only the first validates,
    saves and finally publishes the chosen weights; the others wait for it at a barrier, so no
    process trains on while the selection is being made and the stage folder is written once."""

    def __init__(self, ctx: StageContext, tokenizer, init: str):
        import copy

        self.ctx, self.init = ctx, init  # init: the weights a LoRA adapter sits on
        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.padding_side = "left"
        self.problems = read_jsonl(ctx.inputs["val"])
        self.path = ctx.out / "val_history.json"
        self.history = json.loads(self.path.read_text()) if self.path.exists() else {}
        # each validation's sampled tokens, kept beside the history so a resumed stage still counts them
        self.compute_path = ctx.out / "val_compute.json"
        self.compute = json.loads(self.compute_path.read_text()) if self.compute_path.exists() else {}

    def check(self, model, step: int) -> None:
        """Validate the weights of `step` (`model`: the model, or a function that loads it)."""
        if rank() == 0:
            self._check(model, step)
        barrier()

    def _check(self, model, step: int) -> None:
        import torch

        from ..backends import SamplingParams
        from ..backends.hf import batched_generate

        if str(step) in self.history:
            return
        if not isinstance(model, torch.nn.Module):
            model = model()
        prompts = [self.ctx.task.prompt(p) for p in self.problems]
        params = SamplingParams(n=1, max_new_tokens=self.ctx.cfg.val_max_new_tokens)
        with torch.random.fork_rng(), compute.metering() as meter:  # validation must not move the training RNG
            outs = batched_generate(model, self.tokenizer, prompts, params, batch_size=256,
                                    chat=self.ctx.model_cfg.chat_template)
        self.compute[str(step)] = meter.counts
        reward = sum(self.ctx.task.reward(o[0], p) for o, p in zip(outs, self.problems)) / max(len(prompts), 1)
        best = max(self.history.values(), default=-1.0)
        self.history[str(step)] = reward
        if reward > best:  # ties keep the earlier (less trained) checkpoint
            model.save_pretrained(self.ctx.out / "best")
        write_json(self.compute_path, self.compute)
        write_json(self.path, self.history)

    def load(self, path):
        """Saved weights: a full model, or (LoRA: the Trainer and `check` save only the adapter) the
        adapter on the initial weights."""
        m = self.ctx.model_cfg
        if not (Path(path) / "adapter_config.json").exists():
            return load_model(path, m.dtype, self.ctx.device, m.trust_remote_code)
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(self.init, m.dtype, self.ctx.device, m.trust_remote_code), str(path))

    def finish(self, final_dir) -> dict:
        """Publish the best checkpoint's weights into final_dir (on the first process only)."""
        if rank() != 0:
            barrier()
            return {}
        best_step = max(self.history, key=lambda s: (self.history[s], -int(s)))
        last_step = max(self.history, key=int)
        if best_step != last_step:
            best = self.ctx.out / "best"
            if (best / "adapter_config.json").exists():  # LoRA: publish the best adapter merged, as the last one was
                self.load(best).merge_and_unload().save_pretrained(final_dir)
            else:
                for f in best.iterdir():
                    shutil.copy2(f, final_dir / f.name)
        shutil.rmtree(self.ctx.out / "best", ignore_errors=True)
        barrier()
        sampled = {k: sum(c.get(k, 0) for c in self.compute.values()) for k in ("tokens_prompt", "tokens_completion")}
        return {"val_reward": round(self.history[best_step], 4), "selected_step": int(best_step),
                "val_reward_last": round(self.history[last_step], 4), **sampled}
