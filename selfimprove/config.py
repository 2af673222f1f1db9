"""Typed configuration: one dataclass per config section, registered in Hydra's ConfigStore.

A misspelled key in a recipe or an override fails at composition time because every section is
a structured config; `explain_config_error` turns OmegaConf's message into one that names the
valid keys. Recipes are YAML files found in the shipped `recipes/` folder and in any folder on
`SELFIMPROVE_RECIPE_PATH`; each is registered as a choice of the `recipe` config group.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, get_type_hints

from omegaconf import MISSING, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_dir(name: str) -> Path:
    # A wheel carries conf/ and recipes/ inside the package; a checkout (or editable install)
    # has them beside it at the repository's top level.
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


CONF_DIR = _shipped_dir("conf")
RECIPES_DIR = _shipped_dir("recipes")


# ----------------------------------------------------------------------------- model / task / backend
@dataclass
class TinyModelConfig:
    """The embedded default: a Llama-architecture model built from this config, char tokenizer."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 192
    # No positional encoding (NoPE), as in Lee et al. 2025: RoPE's frequencies are scaled by an
    # infinite factor (rope_type linear, factor inf), so every rotation is the identity and the
    # saved config.json alone makes any later loader build the same model.
    nope: bool = False


@dataclass
class ModelConfig:
    # A hub id or a local save_pretrained folder; null builds the tiny model from `tiny`.
    name_or_path: Optional[str] = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    trust_remote_code: bool = False
    # Wrap every prompt in the tokenizer's chat template as one user turn (instruct models); the
    # training data then becomes conversational, so TRL renders it with the same template.
    chat_template: bool = False
    # auto: float32 on CPU (bf16 is ~30x slower on AVX2 CPUs), bfloat16 on GPU.
    dtype: str = "auto"
    # The one command that gets this model's folder when name_or_path cannot be reached (presets
    # set it; the startup check prints it). null: the generic `huggingface-cli download` advice.
    fetch: Optional[str] = None


@dataclass
class ArithmeticTaskConfig:
    """Difficulty is the digit count of the longer operand. Each split lists the share of its
    problems per digit count 1, 2, 3, ... : the seed examples are mostly easier than the held-out
    test problems, and the training problems (gold answers only) reach the test's difficulty."""

    name: str = "arithmetic"
    data_seed: int = 1234  # fixes the problem sets; independent of the run's `seed`
    seed_examples: int = 400  # worked examples (with rationales) for the seed stage
    # 80% of the seed examples have 1-3 digits; the held-out test has 4 (the tiny model never got
    # off 0% on 5 digits in our runs, so a 5-digit test only halves every number)
    seed_weights: List[float] = field(default_factory=lambda: [0.2, 0.25, 0.35, 0.12, 0.08])
    train_weights: List[float] = field(default_factory=lambda: [0.1, 0.15, 0.2, 0.25, 0.3])
    test_weights: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])
    train_size: int = 6000  # problems with gold answers only
    val_size: int = 100  # drawn like the test set
    test_size: int = 300


@dataclass
class ReverseAdditionTaskConfig:
    """Reversed addition (tasks/reverse_addition.py) for recipe=easy_to_hard. Round 0 trains on
    `seed_examples` gold-labelled problems with operand lengths 1..start_length; round r
    self-labels the next `lengths_per_round` lengths."""

    name: str = "reverse_addition"
    data_seed: int = 1234
    start_length: int = 8  # L0: the longest operand length with gold labels
    lengths_per_round: int = 1  # lengths added per round (the paper's standard schedule: 1)
    seed_examples: int = 20000
    val_size: int = 128  # start_length-digit problems (reporting)
    test_size: int = 128
    train_size: Optional[int] = None  # unused: training problems are drawn per round, at their length
    # Tests only: corrupt every gold answer (reporting, evaluation) above this length; training
    # data must come out identical, since no gold label beyond start_length may enter it. null: off.
    corrupt_gold_above: Optional[int] = None


@dataclass
class GSM8KTaskConfig:
    name: str = "gsm8k"
    # GSM8K-format JSONL files (one {"question", "answer"} object a line, the answer a worked
    # solution ending in "#### N"); leave both null to load `hf_dataset` instead.
    train_path: Optional[str] = None
    test_path: Optional[str] = None
    hf_dataset: Optional[str] = "openai/gsm8k"  # only used when both paths are null
    hf_config: str = "main"
    data_seed: int = 1234  # fixes exemplars, val and subsets; independent of the run's `seed`
    num_fewshot: int = 4  # exemplars drawn from the training file: the `seed` split, not in train/val
    fewshot: bool = True  # prefix every prompt with the exemplars' worked solutions
    val_size: int = 100  # carved from the training file
    train_size: Optional[int] = None  # seeded random subset of the rest; null = all
    test_size: Optional[int] = None  # seeded random subset of the test file; null = all


@dataclass
class MathTaskConfig(GSM8KTaskConfig):
    """MATH-style JSONL (problem, solution with \\boxed{} and/or answer, level); see tasks/competition_math.py."""

    name: str = "math"
    hf_dataset: Optional[str] = None  # e.g. a MATH mirror with problem/solution columns
    hf_config: str = "default"


@dataclass
class PromptsTaskConfig:
    """Prompts without gold answers (Self-Rewarding on a real instruct model); see tasks/prompts.py."""

    name: str = "prompts"
    path: Optional[str] = None  # JSONL, one {"prompt": ...} a line
    seed_path: Optional[str] = None  # JSONL of IFT {"prompt","response"} and EFT {"kind":"eft",...,"judgment"} rows
    judge_pairs_path: Optional[str] = None  # JSONL of held-out {"prompt","chosen","rejected"}
    data_seed: int = 1234
    train_size: Optional[int] = None  # unused: every non-held-out prompt is a training prompt
    val_size: int = 0  # unused: val is the held-out test prompts
    test_size: int = 50  # prompts held out for evaluation (answered, never trained on)
    max_instruction_chars: int = 2000  # self-instruction: longer "prompts" are rejected
    seed_examples: Optional[int] = None  # unused: the seed file's rows are the seed (recipes may set it)


@dataclass
class ArithmeticCorrectionTaskConfig(ArithmeticTaskConfig):
    """Two-turn addition for SCoRe (tasks/arithmetic_correction.py): the seed data gives the base
    model a checkable blind spot and one correction demonstration per worked example; the shares
    below set how often first attempts are wrong, how often a wrong one is fixed, and how often a
    right one is broken."""

    name: str = "arithmetic_correction"
    # the second turn's prompt is the first turn's prompt followed by this template, whose leading
    # {attempt} stands for the first attempt; the instruction after it must not say whether that
    # attempt was right.
    correction_template: str = "{attempt}\nCheck each step and fix any error.\nA:"
    seed_examples: int = 600
    correction_demos: int = 100_000  # at most this many demonstrations (one per worked example)
    blind_spot_rate: float = 0.7  # a column summing to 10 is written as 11 (first attempts)
    demo_first_error_rate: float = 0.3  # random one-column slips in the other first attempts
    demo_fix_rate: float = 0.4
    demo_break_rate: float = 0.2
    # the test is 3-digit (where the base model is right about half the time) and so are most
    # of the RL problems; the worked examples stay at most 3 digits too
    seed_weights: List[float] = field(default_factory=lambda: [0.2, 0.3, 0.5])
    train_weights: List[float] = field(default_factory=lambda: [0.0, 0.2, 0.8])
    test_weights: List[float] = field(default_factory=lambda: [0.0, 0.0, 1.0])


@dataclass
class HFBackendConfig:
    name: str = "hf"
    batch_size: int = 256  # sequences (prompts x samples) per generate call
    device: str = "auto"  # auto | cpu | cuda
    # prompts per saved chunk of a sampling stage: a killed stage resumes at its first missing chunk
    chunk_prompts: int = 2048


@dataclass
class VLLMBackendConfig:
    name: str = "vllm"
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    max_model_len: Optional[int] = None
    enforce_eager: bool = False
    # prompts per engine call, saved as the stage goes: a killed stage resumes at its first
    # missing chunk. Large, because vLLM's throughput comes from scheduling many sequences at once.
    chunk_prompts: int = 4096


# ----------------------------------------------------------------------------- stages
@dataclass
class PrepareConfig:
    kind: str = "prepare"
    enabled: bool = True
    hinted_copies: bool = True  # also train the seed model on hinted prompts (STaR's P_hint)


@dataclass
class LoraConfig:
    """PEFT LoRA for a train stage. The adapter is merged into the weights when training ends, so
    every stage and backend (transformers, vLLM) loads a plain checkpoint. Memory: only the
    adapter's parameters get gradients and optimizer state, so a 7-8B model trains on one 80 GB
    GPU in bf16 with r=16 on the attention projections."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # The learning rate while LoRA is on: an adapter wants roughly 10x a full fine-tune's rate, so
    # a model preset can set both and `lora.enabled=true` alone switches. null: the section's own.
    learning_rate: Optional[float] = None


@dataclass
class TrainerConfig:
    """What every train stage (SFT, DPO) shares: initial weights, data, budget and optimizer."""

    kind: str = "sft"
    enabled: bool = True
    init: str = "base"  # scratch | base | policy: the weights training starts from
    data: str = "train_data"  # the dataset artifact to train on
    steps: int = 300
    step_growth: float = 1.0  # steps in iteration i = steps * step_growth ** (i - 1)
    # at most this many passes over the data (null: no cap): with few rows, `steps` would repeat them
    # many times (Self-Rewarding's pairs vary from tens to hundreds per iteration)
    max_epochs: Optional[float] = None
    # fine-tuning defaults for pretrained models; conf/model/tiny.yaml sets the from-scratch ones
    batch_size: int = 8
    learning_rate: float = 1e-5
    adam_beta2: float = 0.999
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_steps: int = 50  # trainer checkpoint interval: a killed stage resumes from the last one
    # tokens per training row (prompt + completion, chat template included). A row above it stops
    # the stage with the count and the value to set; null: no limit (the longest row sets it), which
    # pretrained presets use since few-shot prompts in a BPE tokenizer vary widely in length.
    max_length: Optional[int] = 192
    lora: LoraConfig = field(default_factory=LoraConfig)
    # >1: training in that many processes (one per GPU; gloo on CPU) under `accelerate launch`
    num_processes: int = 1
    # how those processes share the work: ddp | fsdp | deepspeed_zero2 | deepspeed_zero3, the
    # accelerate configs shipped in conf/accelerate/ (copy one to tune it). Only ddp runs on CPU.
    distributed: str = "ddp"


@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning with TRL's SFTTrainer, loss on the completion only."""

    # ReST-EM's early stopping: greedy reward on the `val` split at every checkpoint; the best
    # checkpoint, not the last, becomes the stage's model.
    select_by_val: bool = False
    val_max_new_tokens: int = 128
    # Independently seeded copies trained alongside the policy and published as `voters`
    # (easy-to-hard's majority vote across models); 1: just the policy.
    replicas: int = 1


@dataclass
class DPOConfig(TrainerConfig):
    """Direct preference optimisation with TRL's DPOTrainer on prompt/chosen/rejected rows. The
    reference model is the initial weights (`init`), frozen."""

    kind: str = "dpo"
    init: str = "policy"
    data: str = "pairs"
    output: str = "policy"  # the artifact name the trained model is published under
    beta: float = 0.1
    loss_type: str = "sigmoid"  # TRL's loss_type: sigmoid (DPO), ipo, hinge, ...
    # Iterative RPO adds an NLL term on the chosen response: e.g. rpo_alpha=1.0 (null: pure DPO)
    rpo_alpha: Optional[float] = None
    learning_rate: float = 5e-7
    steps: int = 100


@dataclass
class GRPOVLLMConfig:
    """Sampling inside GRPO through TRL's own vLLM integration (GPU only); off: transformers'
    `generate`, which is what runs on CPU. The keys map to GRPOConfig's `use_vllm`, `vllm_mode`,
    `vllm_gpu_memory_utilization`, `vllm_tensor_parallel_size` and `vllm_server_base_url`."""

    enabled: bool = False
    mode: str = "colocate"  # colocate: vLLM shares the training GPU | server: a `trl vllm-serve` process
    gpu_memory_utilization: float = 0.3  # colocate: the share of the GPU vLLM may take (TRL's default)
    tensor_parallel_size: int = 1
    server_base_url: Optional[str] = None  # server mode, e.g. http://localhost:8000


@dataclass
class GRPOStageConfig(TrainerConfig):
    """Online RL with TRL's GRPOTrainer (stages/grpo.py); the reward is the task's own checker.
    One stage run = `steps` optimizer steps; each step samples `num_generations` completions for
    each of `batch_size / num_generations` training problems. Defaults: DeepSeekMath's GRPO
    (Shao et al. 2024: beta 0.04, clip 0.2, one update per batch, group-normalised advantages,
    per-sequence loss) where it states one, TRL's otherwise."""

    kind: str = "grpo"
    init: str = "policy"  # each iteration goes on from the last one's policy (and uses it as the reference)
    data: str = "train"  # the problem split prompts are drawn from (gold answers used by the reward only)
    steps: int = 50
    batch_size: int = 64  # completions per optimizer step (TRL's per_device_train_batch_size x processes)
    num_generations: int = 8  # group size k: completions per problem, TRL's default (the paper: 64)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128  # TRL's max_completion_length
    beta: float = 0.04  # KL coefficient (DeepSeekMath; TRL's default is 0.0, which loads no reference)
    epsilon: float = 0.2  # clip range of the probability ratio
    # TRL's loss variants: grpo (per-sequence mean, the paper's), dapo (TRL's default), dr_grpo, bnpo, ...
    loss_type: str = "grpo"
    scale_rewards: str = "group"  # group (the paper's std normalisation) | batch | none (Dr. GRPO)
    num_iterations: int = 1  # updates per sampled batch (the paper's mu = 1)
    learning_rate: float = 1e-6  # DeepSeekMath's and TRL's; conf/model/tiny.yaml sets the from-scratch one
    warmup_ratio: float = 0.0
    lr_scheduler: str = "constant"  # DeepSeekMath keeps the learning rate constant
    save_steps: int = 10
    # any other GRPOConfig option of the installed TRL, passed through as is (e.g. {top_entropy_quantile: 0.2});
    # one TRL does not have is refused with the installed version
    trl_args: Dict[str, Any] = field(default_factory=dict)
    vllm: GRPOVLLMConfig = field(default_factory=GRPOVLLMConfig)


@dataclass
class GenerateConfig:
    kind: str = "generate"
    enabled: bool = True
    split: str = "train"
    num_problems: Optional[int] = None  # problems drawn from the split each iteration; null = all
    k: int = 1  # samples per problem
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    # model: sample from the policy; gold: write the task's gold worked solution of each drawn
    # problem instead, k=1 (recipe=gold_sft, the supervised-ceiling control; no model is run)
    source: str = "model"
    # sample in this many jobs (local processes, or Slurm jobs: see `sharding`); the samples are
    # the same for every value, so changing it never recomputes a finished stage
    shards: int = 1


@dataclass
class TuneConfig:
    """B-STaR: before the E-step, choose the sampling temperature (and the reward threshold, for
    non-binary rewards) that maximise the balance score on a subset of training problems."""

    kind: str = "tune"
    enabled: bool = True
    num_problems: int = 64
    k: int = 8
    temperatures: List[float] = field(default_factory=lambda: [0.5, 0.7, 0.9, 1.1])
    thresholds: List[float] = field(default_factory=list)  # empty: keep `threshold`
    # what it judges with: by default the recipe's own scorer and filter threshold
    threshold: float = "${filter.min_reward}"  # type: ignore[assignment]
    scorer: str = "${score.scorer}"
    min_agreement: float = "${score.min_agreement}"  # type: ignore[assignment]
    n_star: int = "${score.n_star}"  # type: ignore[assignment]
    max_new_tokens: int = "${generate.max_new_tokens}"  # type: ignore[assignment]


@dataclass
class ScoreConfig:
    kind: str = "score"
    enabled: bool = True
    scorer: str = "answer_match"  # answer_match (gold) | majority (self-consistency, no gold)
    min_agreement: float = 0.5  # majority: share of samples that must agree on the pseudo-label
    # B-STaR monitors: the selection threshold they judge, pass@k on the samples, and n* of the
    # balance score (8 in the official code)
    threshold: float = "${filter.min_reward}"  # type: ignore[assignment]
    pass_k: List[int] = field(default_factory=lambda: [1, 4])
    n_star: int = 8


@dataclass
class RationalizeConfig:
    """STaR: retry failed problems with the gold answer as a hint; keep the result without it."""

    kind: str = "rationalize"
    enabled: bool = True
    temperature: float = 0.0
    max_new_tokens: int = 128


@dataclass
class FilterConfig:
    kind: str = "filter"
    enabled: bool = True
    min_reward: float = 1.0
    max_per_problem: Optional[int] = None  # cap on kept samples per problem; null = no cap
    dedup: bool = True  # drop identical texts for one problem before capping
    # the scored rows to select from: this iteration's `scored`, or V-STaR's `verifier_buffer`
    # (every sample of every iteration so far: STaR-style accumulation, nothing discarded)
    source: str = "scored"


@dataclass
class BestOfKConfig:
    """Best-of-k evaluation: every sampled candidate is scored once by the verifier; from the n
    candidates, exact subset estimators give pass@1, majority@k, verifier@k (the top-scored of k)
    and oracle@k (= pass@k), plus the verifier's accuracy on held-out (correct, incorrect) pairs."""

    enabled: bool = False
    k: List[int] = field(default_factory=lambda: [4, 16])  # each needs k <= num_samples
    verifier: Optional[str] = None  # the verifier's artifact (e.g. `verifier`); null: generator metrics only
    # logprob: log V(y|x), the paper's score; mean_logprob: per token; implicit_reward: the DPO
    # reward log V(y|x) - log ref(y|x) with `reference` as ref (DPO's beta scales it, which
    # changes no ranking, so it is left out)
    score: str = "logprob"
    reference: str = "base"
    batch_size: int = 64  # sequences per verifier forward pass


@dataclass
class EvaluateConfig:
    kind: str = "evaluate"
    enabled: bool = True
    split: str = "test"  # reported only: nothing is chosen by it (choices read `val_split`)
    max_problems: Optional[int] = None
    # Also greedy on this split -> `val_accuracy`, the number sweeps (Optuna's objective) and any
    # other choice read, so the test split stays for reporting. null: skip (tasks without gold).
    val_split: Optional[str] = "val"
    val_max_problems: Optional[int] = None
    max_new_tokens: int = 128
    # pass@k / maj@k from `num_samples` sampled completions per problem (0 turns sampling off)
    num_samples: int = 4
    pass_k: List[int] = field(default_factory=lambda: [1, 4])
    temperature: float = 1.0
    top_p: float = 0.95
    # V-STaR: Best-of-k over the `num_samples` candidates, ranked by a verifier (see BestOfKConfig)
    best_of: BestOfKConfig = field(default_factory=lambda: BestOfKConfig())
    shards: int = 1  # as generate.shards


@dataclass
class SelfLabelConfig:
    """Easy-to-hard (Lee et al. 2025): new problems at the round's next length(s), no gold,
    labelled with the current model's greedy output, then filtered (stages/self_label.py)."""

    kind: str = "self_label"
    enabled: bool = True
    num_problems: int = 5000  # per length added this round
    # length filter: drop a label at least this many tokens shorter than the round's longest
    # label (the paper's t; 1 for reversed addition); 0 turns it off
    length_filter: int = 1
    # cheap vote across samples of the one model: keep a label only if at least `vote_threshold`
    # of `vote_samples` samples at `vote_temperature` equal it; 0 samples turns it off
    vote_samples: int = 0
    vote_temperature: float = 0.7
    vote_threshold: float = 0.7
    # majority vote across independently seeded models (the `voters` a train stage with
    # `replicas` > 1 publishes): keep a label only if at least this share of all models (the
    # policy included) write the identical output; the paper keeps 4 of 5 (0.7). Used only when
    # a voters artifact exists.
    model_vote_threshold: float = 0.7


@dataclass
class MixConfig:
    """The paper's training mixture for a round: the newest self-labelled set with probability
    `newest_share`, the rest shared between the original labelled data (weight: its number of
    lengths) and each older round (weight 1). Rows are drawn with replacement; `rows` should be
    the train stage's steps x batch size, so one pass is exactly the mixture."""

    kind: str = "mix"
    enabled: bool = True
    rows: int = 64000
    newest_share: float = 0.5
    original_weight: Optional[float] = None  # null: task.start_length (the paper: number of lengths)


@dataclass
class EvaluateLengthsConfig:
    """Exact match per operand length on fresh gold-labelled problems (reporting only). The
    window is relative to L, the longest length trained on after this round."""

    kind: str = "evaluate_lengths"
    enabled: bool = True
    per_length: int = 256
    window: List[int] = field(default_factory=lambda: [-3, 5])  # lengths L-3 .. L+5, as the paper
    lengths: List[int] = field(default_factory=list)  # explicit lengths instead of the window
    target: float = 0.99  # `longest_at_target`: longest length with every length up to it at >= this


@dataclass
class QueriesConfig:
    """V-STaR's D_query: the problem splits to sample in each iteration, published as `output`."""

    kind: str = "queries"
    enabled: bool = True
    splits: List[str] = field(default_factory=lambda: ["seed", "train"])
    output: str = "train"


@dataclass
class BufferConfig:
    """V-STaR's verifier buffer D_VER: every scored sample, correct or not, appended each
    iteration to the previous iteration's buffer (one dataset artifact per iteration)."""

    kind: str = "buffer"
    enabled: bool = True
    output: str = "verifier_buffer"  # the artifact; it lives for the whole run
    # also hold the worked seed examples as correct rows, as D_GEN and D_VER start from D_SFT
    include_seed: bool = True


@dataclass
class VerifierPairsConfig:
    """Correct x incorrect solutions of the same problem, as prompt/chosen/rejected rows."""

    kind: str = "verifier_pairs"
    enabled: bool = True
    source: str = "verifier_buffer"
    min_reward: float = 1.0  # a sample is correct at or above this reward, incorrect below it
    # the Cartesian product per problem, capped (pairs drawn uniformly from it); null = no cap
    max_pairs_per_problem: Optional[int] = 64
    dedup: bool = True  # identical texts of one problem count once


# Self-Rewarding (recipe=self_rewarding): the `judge` section is also the `judge=` config group
# (conf/judge/*.yaml: template and score regex); the other judge-using stages read it.
def _template_sha256(name: str) -> str:
    """The judge template file's checksum, part of every judge stage's config: stage fingerprints
    follow the file's content, not just its name (an edited rubric recomputes what it affects)."""
    import hashlib

    from .judges import template_path

    path = template_path(str(name))
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


OmegaConf.register_new_resolver("template_sha256", _template_sha256, replace=True)


@dataclass
class JudgeConfig:
    """LLM-as-a-judge over the policy's own candidates (Yuan et al. 2024: 3 judgments at T=0.7, p=0.9)."""

    kind: str = "judge"
    enabled: bool = True
    template: str = "scratchpad_5pt.txt"  # a shipped template (selfimprove/judges/templates/) or a path
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "Score: ([0-9.]+)"  # first group = the score; the last match in a judgment counts
    min_score: float = 0.0
    max_score: float = 5.0
    samples: int = 3  # judgments per candidate, averaged over the parseable ones
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 64


@dataclass
class JudgeSeedConfig:
    """EFT seed data (judge prompt -> justification + `Score: N`) and self-instruction demos, added
    to the IFT seed data that trains M1."""

    kind: str = "judge_seed"
    enabled: bool = True
    eft_per_problem: int = 2  # EFT judgments per seed problem (built-in task)
    # where the built-in task's EFT problems come from: `seed` (the IFT worked examples' problems)
    # or `train` (the training pool, gold answers only: harder problems, none of them in IFT)
    eft_source: str = "seed"
    instruct_examples: int = 400  # self-instruction demonstrations (few shots -> a new prompt)
    shots: int = 4
    template: str = "${judge.template}"
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "${judge.score_regex}"
    min_score: float = "${judge.min_score}"  # type: ignore[assignment]
    max_score: float = "${judge.max_score}"  # type: ignore[assignment]


@dataclass
class SelfInstructConfig:
    """The policy writes new prompts from few-shot prompts of pool examples (paper: 8-shot, T=0.6, p=0.9)."""

    kind: str = "self_instruct"
    enabled: bool = True
    num_prompts: int = 600  # attempts; invalid/duplicate ones are dropped
    max_kept: Optional[int] = None
    # Shares of the kept prompts per task difficulty 1, 2, ... (the task's digit count for the
    # built-in task), e.g. [0, 0, 0, 1] for 4-digit problems only. The model writes what it has
    # seen most; quotas steer the prompts to where its answers still differ. Oversample with
    # num_prompts: prompts over a difficulty's quota are dropped and counted. null: keep all.
    difficulty_weights: Optional[List[float]] = None
    shots: int = 4
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 24


@dataclass
class PairsConfig:
    """Highest- vs lowest-scored candidate per prompt; ties dropped."""

    kind: str = "pairs"
    enabled: bool = True
    # Drop pairs whose responses first differ at one of these step ends, e.g. [",", "\n"] for the
    # built-in task: one response stops (or closes a step) where the other goes on. Empty: keep
    # every pair, as in the paper. recipes/self_rewarding.yaml says why it drops them.
    drop_at_step_ends: List[str] = field(default_factory=list)


@dataclass
class JudgeQualityConfig:
    """Pairwise accuracy of the policy-as-judge on held-out (correct, incorrect) pairs (paper's Table 4)."""

    kind: str = "judge_quality"
    enabled: bool = True
    split: str = "val"
    max_pairs: Optional[int] = None
    template: str = "${judge.template}"
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "${judge.score_regex}"
    min_score: float = "${judge.min_score}"  # type: ignore[assignment]
    max_score: float = "${judge.max_score}"  # type: ignore[assignment]
    samples: int = "${judge.samples}"  # type: ignore[assignment]
    temperature: float = "${judge.temperature}"  # type: ignore[assignment]
    top_p: float = "${judge.top_p}"  # type: ignore[assignment]
    max_new_tokens: int = "${judge.max_new_tokens}"  # type: ignore[assignment]
    # The judge on the model's OWN answers: sample `own_samples` answers per held-out problem
    # (generate's sampling settings), pair the first right with the first wrong one (by gold) and
    # judge both. 0 turns it off. The fixed pairs above are gold solutions and perturbations of
    # them, the kind of text EFT trained the judge on; these are the answers DPO pairs are built from.
    own_samples: int = 0
    own_temperature: float = "${generate.temperature}"  # type: ignore[assignment]
    own_top_p: float = "${generate.top_p}"  # type: ignore[assignment]
    own_max_new_tokens: int = "${generate.max_new_tokens}"  # type: ignore[assignment]


@dataclass
class ScoreRLConfig:
    """SCoRe's multi-turn RL (stages/score_rl.py): REINFORCE with a leave-one-out baseline over
    `k` two-turn episodes per problem, a per-turn KL penalty to the base model, and per-turn
    rewards. `schedule[i - 1]` is the SCoRe stage run in outer iteration i: 1 = Stage I (reward
    turn 2 only, strong KL `beta2` on turn 1), 2 = Stage II (both turns, turn 2 shaped)."""

    kind: str = "score_rl"
    enabled: bool = True
    schedule: List[int] = field(default_factory=lambda: [1, 2])
    split: str = "train"
    steps: int = 200
    problems_per_step: int = 16
    k: int = 4  # episodes per problem (RLOO needs >= 2)
    temperature: float = 1.0
    max_new_tokens: int = 64
    alpha: float = 10.0  # Stage II shaping: r2 + alpha * (r2 - r1)
    beta1: float = 0.01  # KL to the base model on every turn (turn 2 only in Stage I)
    beta2: float = 0.1  # Stage I: KL on turn 1
    learning_rate: float = 1e-3
    # Stage II's shaped turn-2 reward spans -alpha..1+alpha, so its steps are larger; null: learning_rate
    stage2_learning_rate: Optional[float] = None
    max_grad_norm: float = 1.0
    save_steps: int = 10  # checkpoint interval (model, optimizer, RNG, step)
    loss_limit: float = 1e4  # |loss| above this (or non-finite) stops the stage
    # LoRA: only an adapter is trained; the KL reference is the adapter-disabled model (one copy of
    # the base weights); the published model is merged (stages/score_lora.py)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class TurnsEvalConfig:
    """Two-turn held-out evaluation, greedy as in the paper: Acc@t1, Acc@t2, Δ(t1,t2), Δ i→c, Δ c→i."""

    kind: str = "evaluate_turns"
    enabled: bool = True
    split: str = "test"  # reported only
    max_problems: Optional[int] = None
    # also two turns on this split -> val_acc_t1, val_acc_t2, val_delta (what choices read); null: skip
    val_split: Optional[str] = "val"
    val_max_problems: Optional[int] = None
    max_new_tokens: int = 64


@dataclass
class TrackingConfig:
    wandb_mode: str = "disabled"  # disabled | offline | online
    wandb_project: str = "selfimprove"
    wandb_entity: Optional[str] = None
    quiet: bool = False  # no live bars: line-oriented logs for batch jobs
    # the per-iteration table: column title -> "stage.metric"
    table: List[str] = field(
        default_factory=lambda: [
            "generate.samples",
            "filter.kept",
            "rationalize.rationalized",
            "train.steps",
            "evaluate.accuracy",
            "evaluate.val_accuracy",
        ]
    )


@dataclass
class ShardingConfig:
    """How the jobs of a sampling stage with `shards` > 1 are launched (selfimprove/sharding.py)."""

    # auto: Slurm jobs when this run is itself a Slurm job (sbatch on PATH), else local processes
    launcher: str = "auto"  # auto | local | slurm
    # Slurm resources per shard; null: what the current job has (SLURM_* variables)
    partition: Optional[str] = None
    cpus_per_task: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_gb: Optional[int] = None
    timeout_min: int = 60
    threads: int = 0  # torch threads per shard; 0: this process's threads / shards (local), at least 1
    retries: int = 1  # extra rounds for chunks a dead shard left missing


@dataclass
class RunConfig:
    iterations: int = 3
    seed: int = 0
    output_root: str = "outputs"
    run_name: str = "${hydra:runtime.choices.recipe}"
    sweep_name: str = "sweep"  # -m runs go to <output_root>/<sweep_name>/<overrides>/
    # What a Hydra sweeper (Optuna) maximises: "<stage>.<metric>" from that stage's last metrics
    # row. Validation, never test: the test split is for reporting only.
    objective: str = "evaluate.val_accuracy"
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default. Parallel local jobs want 1 each.
    # Reuse finished stages of other runs under the same output_root whose fingerprint matches.
    cache: bool = True
    # A run directory whose saved config differs from the new command is refused unless this is
    # true; then stages whose fingerprint changed (and everything after them) are recomputed.
    reconfigure: bool = False
    # stage lists: each entry names a stage section of this config
    setup: List[str] = field(default_factory=lambda: ["prepare", "seed_sft", "evaluate"])
    stages: List[str] = field(
        default_factory=lambda: ["generate", "score", "rationalize", "filter", "train", "evaluate"]
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    task: Any = MISSING
    backend: Any = MISSING
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    # the seed stage trains the from-scratch model on the worked examples
    seed_sft: SFTConfig = field(default_factory=lambda: SFTConfig(init="scratch", data="seed_data", steps=1000))
    tune: TuneConfig = field(default_factory=TuneConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    rationalize: RationalizeConfig = field(default_factory=RationalizeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    train: SFTConfig = field(default_factory=SFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # Self-Rewarding: M1 is SFT from scratch on IFT + EFT seed data (its own section, so budgets and
    # profiles can size it apart from STaR's seed model)
    m1_sft: SFTConfig = field(default_factory=lambda: SFTConfig(init="scratch", data="seed_data"))
    judge_seed: JudgeSeedConfig = field(default_factory=JudgeSeedConfig)
    self_instruct: SelfInstructConfig = field(default_factory=SelfInstructConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    judge_quality: JudgeQualityConfig = field(default_factory=JudgeQualityConfig)
    # SCoRe (recipes/score.yaml)
    score_rl: ScoreRLConfig = field(default_factory=ScoreRLConfig)
    evaluate_turns: TurnsEvalConfig = field(default_factory=TurnsEvalConfig)
    # GRPO (recipes/grpo.yaml): online RL with TRL's GRPOTrainer
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)
    # V-STaR: the verifier buffer, its preference pairs and the DPO verifier (from G_SFT = base)
    queries: QueriesConfig = field(default_factory=QueriesConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    verifier_pairs: VerifierPairsConfig = field(default_factory=VerifierPairsConfig)
    verifier: DPOConfig = field(default_factory=lambda: DPOConfig(init="base", data="verifier_pairs", output="verifier"))
    # Easy-to-hard (recipes/easy_to_hard.yaml)
    self_label: SelfLabelConfig = field(default_factory=SelfLabelConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    evaluate_lengths: EvaluateLengthsConfig = field(default_factory=EvaluateLengthsConfig)
    # stages of `stages` that run in the last iteration only (V-STaR trains its verifier once,
    # after the last iteration; empty the list to train one every iteration)
    last_iteration_only: List[str] = field(default_factory=list)


# Option schemas for groups whose shape depends on the choice (task=, backend=).
GROUP_SCHEMAS = {
    ("task", "arithmetic_schema"): ArithmeticTaskConfig,
    ("task", "gsm8k_schema"): GSM8KTaskConfig,
    ("task", "math_schema"): MathTaskConfig,
    ("task", "arithmetic_correction_schema"): ArithmeticCorrectionTaskConfig,
    ("backend", "hf_schema"): HFBackendConfig,
    ("backend", "vllm_schema"): VLLMBackendConfig,
    ("task", "prompts_schema"): PromptsTaskConfig,
    ("task", "reverse_addition_schema"): ReverseAdditionTaskConfig,
}

# Keys that may change between invocations of one run without being a conflict.
RESUMABLE_CHANGES = ("iterations", "reconfigure", "tracking", "threads", "sweep_name", "cache", "sharding",
                     "objective")  # objective: what a sweeper reads, not what a run computes
# Stage keys that change how a stage runs, not what it produces (kept out of fingerprints)
UNFINGERPRINTED_STAGE_KEYS = ("shards",)


TRAIN_KINDS = ("sft", "dpo", "grpo")


class ConfigError(ValueError):
    """A user-facing configuration problem; its message says what to write instead."""


# ----------------------------------------------------------------------------- registration
def recipe_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SELFIMPROVE_RECIPE_PATH", "").split(os.pathsep) if p]
    return [RECIPES_DIR, *extra]


def available_recipes() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)  # earlier folders win: shipped recipes cannot be shadowed
    return found


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for (group, name), schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=name, node=schema)
    for name, path in available_recipes().items():
        cs.store(group="recipe", name=name, node=OmegaConf.load(path), package="_global_")


# ----------------------------------------------------------------------------- validation
def _schema_at(path: list[str]):
    """The dataclass describing the config node at `path`, or None (dynamic groups, leaves)."""
    node: Any = RunConfig
    for part in path:
        hints = get_type_hints(node) if is_dataclass(node) else {}
        node = hints.get(part)
    return node if is_dataclass(node) else None


def explain_config_error(exc: BaseException) -> Optional[str]:
    """Turn a Hydra/OmegaConf composition error into a message that names the valid keys."""
    text = f"{exc}\n{exc.__cause__ or ''}"
    m = re.search(r"Could not find '(\w+)/([^']+)'", text)
    if m:
        group, choice = m.groups()
        if group == "recipe":
            names = sorted(available_recipes())
            near = difflib.get_close_matches(choice, names, n=1)
            hint = f" Did you mean recipe={near[0]}?" if near else ""
            return (
                f"Unknown recipe '{choice}'. Available recipes: {', '.join(names)}.{hint} "
                f"Your own recipe folders can be added with SELFIMPROVE_RECIPE_PATH=/path/to/dir."
            )
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) if (CONF_DIR / group).is_dir() else []
        return f"Unknown choice '{choice}' for '{group}='. Available: {', '.join(options) or '(none)'}."
    m = re.search(r"Key '([^']+)' (?:not in|is not in) '(\w+)'\s+full_key: (\S+)", text)
    if m:
        key, _, full_key = m.groups()
        parent = full_key.split(".")[:-1]
        where = re.search(r"In '([^']+)'", text)
        origin = f" (in {where.group(1)})" if where and "recipe" in where.group(1) else ""
        obj = re.search(r"object_type=(\w+)", text)
        schema = globals().get(obj.group(1)) if obj else None
        schema = schema if is_dataclass(schema) else _schema_at(parent)
        valid = [f.name for f in fields(schema)] if is_dataclass(schema) else []
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" Did you mean '{'.'.join(parent + [near[0]])}'?" if near else ""
        section = ".".join(parent) or "the top level"
        return (
            f"Unknown config key '{full_key}'{origin}. Valid keys in {section}: "
            f"{', '.join(valid)}.{hint}"
        )
    m = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)\s+full_key: (\S+)", text)
    if m:
        value, typ, full_key = m.groups()
        return f"'{full_key}' must be of type {typ}, got '{value}'. Write for example {full_key}=" + {
            "Integer": "3", "Float": "0.7", "Boolean": "true"}.get(typ, "...") + "."
    return None


def validate(cfg: Any) -> None:
    """Semantic checks that a schema cannot express. Raises ConfigError with advice."""
    problems: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            problems.append(msg)

    need(cfg.iterations >= 0, f"iterations must be >= 0 (got {cfg.iterations}).")
    names = list(dict.fromkeys(list(cfg.setup) + list(cfg.stages)))
    # the format only: whether the stage writes the metric is known after a run (cli._objective)
    stage, _, metric = str(cfg.get("objective", "evaluate.val_accuracy")).partition(".")
    need(bool(stage) and bool(metric), f"objective must be '<stage>.<metric>' (got '{cfg.get('objective')}'), e.g. "
                                       f"objective=evaluate.val_accuracy (validation: keep test for reporting).")
    kind = cfg[stage].get("kind") if stage in cfg and OmegaConf.is_dict(cfg[stage]) else None
    need(kind not in ("evaluate", "evaluate_turns") or metric.startswith("val_"),
         f"objective={stage}.{metric} reads the test split, which is for reporting only; a sweep must choose on "
         f"validation: objective={stage}.val_{'accuracy' if kind == 'evaluate' else 'acc_t2'}.")
    for name in names:
        need(name in cfg and OmegaConf.is_dict(cfg[name]) and "kind" in cfg[name],
             f"stage '{name}' in the stage lists has no config section with a 'kind'.")
    for name in names:
        if name not in cfg or not OmegaConf.is_dict(cfg[name]):
            continue
        s = cfg[name]
        for key in ("temperature",):
            if key in s:
                need(s[key] >= 0, f"{name}.{key} must be >= 0 (got {s[key]}); use 0 for greedy.")
        if "top_p" in s:
            need(0 < s.top_p <= 1, f"{name}.top_p must be in (0, 1] (got {s.top_p}).")
        if "k" in s:
            need(s.k >= 1, f"{name}.k must be >= 1 (got {s.k}).")
        if "shards" in s:
            need(s.shards >= 1, f"{name}.shards must be >= 1 (got {s.shards}); 1 samples in this process.")
        # what is trained on or chosen by never comes from the test split (it is for reporting only)
        feeds = list(s.get("splits") or []) + ([s.split] if s.kind in ("generate", "score_rl", "tune") and "split" in s
                                              else [])
        need("test" not in feeds, f"{name} reads the test split, which is for reporting only; use train (or val "
                                  f"to choose something).")
        if s.kind in TRAIN_KINDS and s.get("max_epochs") is not None:
            need(s.max_epochs > 0, f"{name}.max_epochs must be > 0 or null for no cap (got {s.max_epochs}).")
        if "lora" in s and s.lora.enabled:  # train stages and the SCoRe trainer
            import importlib.util

            need(importlib.util.find_spec("peft") is not None,
                 f"{name}.lora.enabled needs peft: pip install \"selfimprove[lora]\".")
        if s.kind in TRAIN_KINDS:
            need(s.init in ("scratch", "base", "policy") and (s.kind == "sft" or s.init != "scratch"),
                 f"{name}.init must be base or policy{' or scratch' if s.kind == 'sft' else ''} (got '{s.init}').")
            need(s.steps >= 1, f"{name}.steps must be >= 1 (got {s.steps}).")
            need(s.batch_size >= 1, f"{name}.batch_size must be >= 1.")
            need(s.learning_rate > 0, f"{name}.learning_rate must be > 0.")
            need(s.step_growth > 0, f"{name}.step_growth must be > 0.")
            need(s.num_processes >= 1, f"{name}.num_processes must be >= 1.")
            if s.num_processes > 1:  # each process takes batch_size / num_processes rows a step
                lower = max(s.num_processes, s.batch_size // s.num_processes * s.num_processes)
                need(s.batch_size % s.num_processes == 0,
                     f"{name}.batch_size={s.batch_size} is the global batch and must divide evenly over "
                     f"{name}.num_processes={s.num_processes} (else the global batch silently changes); use "
                     f"{name}.batch_size={lower} or {lower + s.num_processes}.")
            shipped = sorted(p.stem for p in (CONF_DIR / "accelerate").glob("*.yaml"))
            need(s.distributed in shipped, f"{name}.distributed must be one of {', '.join(shipped)} (got '{s.distributed}').")
            if s.num_processes > 1 and s.distributed.startswith("deepspeed"):
                import importlib.util

                need(importlib.util.find_spec("deepspeed") is not None,
                     f"{name}.distributed={s.distributed} needs DeepSpeed: `pip install deepspeed` on the GPU machine.")
            if s.num_processes > 1 and s.distributed != "ddp":
                import torch

                need(torch.cuda.is_available() or cfg.device.startswith("cuda"),
                     f"{name}.distributed={s.distributed} needs GPUs and none is visible; use {name}.distributed=ddp on CPU.")
        if s.kind == "dpo":
            need(s.beta > 0, f"{name}.beta must be > 0 (got {s.beta}); the paper's value is 0.1.")
            need(s.rpo_alpha is None or s.rpo_alpha >= 0, f"{name}.rpo_alpha must be >= 0 or null (got {s.rpo_alpha}).")
        if s.kind == "grpo":
            _validate_grpo(name, s, need)
        if s.kind == "sft":
            need(s.replicas >= 1, f"{name}.replicas must be >= 1 (got {s.replicas}); the paper votes across 5 models.")
            need(s.replicas == 1 or (s.num_processes == 1 and not s.select_by_val and not s.lora.enabled),
                 f"{name}.replicas > 1 trains plain single-process models: set {name}.num_processes=1, "
                 f"{name}.select_by_val=false and {name}.lora.enabled=false, or {name}.replicas=1.")
            need(not (s.num_processes > 1 and s.select_by_val and s.distributed != "ddp"),
                 f"{name}.select_by_val with {name}.num_processes > 1 needs {name}.distributed=ddp: the first "
                 f"process validates the whole model, which under {s.distributed} it does not hold.")
        if s.kind == "judge_quality":
            need(s.own_samples == 0 or s.own_samples >= 2,
                 f"{name}.own_samples must be 0 (off) or >= 2: a right and a wrong answer need two samples "
                 f"(got {s.own_samples}); e.g. {name}.own_samples=4.")
        if s.kind == "generate":
            need(s.source in ("model", "gold"), f"{name}.source must be model (sample from the policy) or gold "
                                                f"(the task's worked solutions) (got '{s.source}').")
            need(s.source != "gold" or s.k == 1, f"{name}.source=gold writes one gold solution per problem: "
                                                 f"set {name}.k=1 (got {s.k}).")
        if s.kind == "filter" and s.max_per_problem is not None:
            need(s.max_per_problem >= 1, f"{name}.max_per_problem must be >= 1 or null for no cap (got {s.max_per_problem}).")
        if s.kind == "evaluate" and s.num_samples > 0:
            bad = [k for k in s.pass_k if k > s.num_samples or k < 1]
            need(not bad, f"{name}.pass_k has {bad} but only {name}.num_samples={s.num_samples} samples are drawn; "
                          f"raise {name}.num_samples to at least {max(s.pass_k)} or drop those k.")
        if s.kind == "score_rl":
            need(s.alpha >= 0, f"{name}.alpha must be >= 0 (got {s.alpha}); the paper's value is 10.")
            need(s.beta1 >= 0 and s.beta2 >= 0, f"{name}.beta1 and {name}.beta2 must be >= 0 (got {s.beta1}, "
                                                f"{s.beta2}); the paper's values are 0.01 and 0.1.")
            need(s.k >= 2, f"{name}.k must be >= 2: the leave-one-out baseline needs another episode (got {s.k}).")
            need(s.steps >= 1 and s.problems_per_step >= 1 and s.save_steps >= 1,
                 f"{name}.steps, problems_per_step and save_steps must be >= 1.")
            need(s.learning_rate > 0 and s.loss_limit > 0 and (s.stage2_learning_rate is None or s.stage2_learning_rate > 0),
                 f"{name}.learning_rate, stage2_learning_rate and loss_limit must be > 0.")
            need(set(s.schedule) <= {1, 2} and len(s.schedule) >= cfg.iterations,
                 f"{name}.schedule lists the SCoRe stage (1 or 2) of each iteration and needs one per iteration: "
                 f"got {list(s.schedule)} for iterations={cfg.iterations}; e.g. {name}.schedule=[1,2].")
        if s.kind == "score_rl":
            need(cfg.backend.name == "hf",
                 f"'{name}' samples its episodes from the policy it updates every step, which only backend=hf does "
                 f"(backend={cfg.backend.name} would need the new weights synced into its engine each step, not "
                 f"built yet); run recipe=score with backend=hf.")
        if s.kind in ("score_rl", "evaluate_turns"):
            need("correction_template" in cfg.task,
                 f"stage '{name}' needs a two-turn task with a correction instruction; task={cfg.task.name} has "
                 "none. Use task=arithmetic_correction.")
    _validate_vstar(cfg, names, need)
    _validate_easy_to_hard(cfg, names, need)
    if "correction_template" in cfg.task:
        need(cfg.task.correction_template.startswith("{attempt}"),
             f"task.correction_template must begin with the placeholder {{attempt}}, where the first attempt goes: "
             f"the instruction follows it, as in the paper (got {cfg.task.correction_template!r}); e.g. "
             f"'{{attempt}}\\nCheck each step and fix any error.\\nA:'.")
        for key in ("blind_spot_rate", "demo_first_error_rate", "demo_fix_rate", "demo_break_rate"):
            need(0 <= cfg.task[key] <= 1, f"task.{key} must be a share in [0, 1] (got {cfg.task[key]}).")
    if cfg.backend.name == "vllm":
        import importlib.util

        need(importlib.util.find_spec("vllm") is not None,
             "backend=vllm needs vLLM, which is not installed: in a CUDA environment run "
             "`pip install \"selfimprove[vllm]\"`, or use backend=hf.")
    need(_device_available(cfg.device) is None, _device_available(cfg.device) or "")
    for sec in ("backend",):
        if "device" in cfg[sec] and cfg[sec].device != "auto":
            need(_device_available(cfg[sec].device) is None, f"{sec}.{_device_available(cfg[sec].device) or ''}")
    need(cfg.model.dtype in ("auto", "float32", "bfloat16", "float16"),
         f"model.dtype must be auto, float32, bfloat16 or float16 (got '{cfg.model.dtype}').")
    need(cfg.sharding.launcher in ("auto", "local", "slurm"),
         f"sharding.launcher must be auto, local or slurm (got '{cfg.sharding.launcher}').")
    need(cfg.sharding.retries >= 0 and cfg.sharding.timeout_min >= 1,
         "sharding.retries must be >= 0 and sharding.timeout_min >= 1.")
    problems += judge_problems(cfg, names)
    from .models.checks import local_problems

    problems += local_problems(cfg.model)
    if problems:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))


def _device_available(device: str) -> Optional[str]:
    """None if `device` can run here, else why not (checked at startup: a run must not reuse and
    train for minutes, then die on the first tensor moved to a device that is not there)."""
    import re as _re

    if device in ("auto", "cpu"):
        return None
    m = _re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        return f"device must be auto, cpu, cuda or cuda:N (got '{device}')."
    import torch

    if not torch.cuda.is_available():
        return (f"device={device} but this machine has no usable CUDA GPU (torch {torch.__version__}, "
                f"CUDA available: no). Use device=auto (CPU here) or run on a GPU machine.")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        return f"device={device} but only {torch.cuda.device_count()} CUDA device(s) are visible."
    return None


def _validate_grpo(name: str, s: Any, need) -> None:
    """GRPO's settings (stages/grpo.py), including the options the installed TRL must have."""
    k = s.num_generations
    need(k >= 2, f"{name}.num_generations must be >= 2 (got {k}): GRPO's advantage compares each sample with "
                 f"the other samples of its problem, so a group of one has no advantage. TRL's default is 8, "
                 f"DeepSeekMath's 64; e.g. {name}.num_generations=8.")
    per_process = s.batch_size // max(s.num_processes, 1)
    need(k < 2 or (s.batch_size % max(s.num_processes, 1) == 0 and per_process * s.num_processes % k == 0),
         f"{name}.batch_size counts completions per step and must be a multiple of {name}.num_generations "
         f"(and of {name}.num_processes): got batch_size={s.batch_size}, num_generations={k}, num_processes="
         f"{s.num_processes}; e.g. {name}.batch_size={max(k, 1) * 8} for 8 problems per step.")
    need(s.temperature > 0, f"{name}.temperature must be > 0 (got {s.temperature}): greedy decoding makes every "
                            f"sample of a group the same, and then no advantage is ever non-zero; the paper uses 1.0.")
    need(s.beta >= 0, f"{name}.beta must be >= 0 (got {s.beta}); 0 drops the KL term, DeepSeekMath uses 0.04.")
    need(s.epsilon > 0, f"{name}.epsilon must be > 0 (got {s.epsilon}); the paper clips at 0.2.")
    need(s.num_iterations >= 1, f"{name}.num_iterations must be >= 1 (got {s.num_iterations}).")
    need(s.max_new_tokens >= 1, f"{name}.max_new_tokens must be >= 1 (got {s.max_new_tokens}).")
    need(s.scale_rewards in ("group", "batch", "none"),
         f"{name}.scale_rewards must be group, batch or none (got '{s.scale_rewards}').")
    # TRL keeps a sampled batch for num_iterations steps and does not checkpoint it: a checkpoint
    # in the middle of one would resume with a freshly sampled batch
    need(s.save_steps >= 1 and s.save_steps % max(s.num_iterations, 1) == 0,
         f"{name}.save_steps must be a multiple of {name}.num_iterations={s.num_iterations} (got {s.save_steps}), "
         f"so that a resumed stage starts at a freshly sampled batch.")
    need(s.vllm.mode in ("colocate", "server"), f"{name}.vllm.mode must be colocate or server (got '{s.vllm.mode}').")
    if s.vllm.enabled:
        import importlib.util

        need(importlib.util.find_spec("vllm") is not None,
             f"{name}.vllm.enabled needs vLLM, which is not installed: on a CUDA machine run "
             f"`pip install \"selfimprove[vllm]\"`, or set {name}.vllm.enabled=false (transformers sampling).")
    if importlib_ok("trl"):
        from .stages.grpo import check_options

        for problem in check_options(s, name):
            need(False, problem)


def importlib_ok(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _validate_vstar(cfg: Any, names: list[str], need) -> None:
    """V-STaR's settings: Best-of-k needs k <= the candidates sampled and a verifier some stage
    trains; last_iteration_only names stages of the iteration."""
    extra = [s for s in cfg.get("last_iteration_only", []) if s not in cfg.stages]
    need(not extra, f"last_iteration_only lists {extra}, which are not in stages={list(cfg.stages)}.")
    trained = {cfg[n].output for n in names if n in cfg and OmegaConf.is_dict(cfg[n]) and cfg[n].get("kind") == "dpo"}
    for name in names:
        s = cfg[name] if name in cfg and OmegaConf.is_dict(cfg[name]) else {}
        if s.get("kind") == "evaluate" and s.best_of.enabled:
            b = s.best_of
            big = [k for k in b.k if k > s.num_samples or k < 1]
            need(not big, f"{name}.best_of.k has {big} but only {name}.num_samples={s.num_samples} candidates are "
                          f"sampled per problem; raise {name}.num_samples to at least {max(b.k)} (the paper samples "
                          f"n >= k, e.g. 128 for k = 64) or drop those k.")
            need(b.score in ("logprob", "mean_logprob", "implicit_reward"),
                 f"{name}.best_of.score must be logprob, mean_logprob or implicit_reward (got '{b.score}').")
            need(len(b.k) > 0, f"{name}.best_of.k is empty; list the k to report, e.g. {name}.best_of.k=[4,16].")
            need(b.batch_size >= 1, f"{name}.best_of.batch_size must be >= 1.")
            need(b.verifier is None or b.verifier in trained,
                 f"{name}.best_of.verifier='{b.verifier}' but no dpo stage in the stage lists publishes it "
                 f"(stages publish: {sorted(trained) or 'none'}); add the verifier stages (recipe=vstar) or set "
                 f"{name}.best_of.verifier=null.")
        if s.get("kind") == "verifier_pairs" and s.max_pairs_per_problem is not None:
            need(s.max_pairs_per_problem >= 1, f"{name}.max_pairs_per_problem must be >= 1 or null for the full "
                                               f"product (got {s.max_pairs_per_problem}).")
def _validate_easy_to_hard(cfg: Any, names: list[str], need) -> None:
    """Easy-to-hard: a start length >= 1, filter thresholds in (0, 1], and a schedule whose longest
    problem (last round, plus the evaluation window) fits the model's positions."""
    for name in names:
        s = cfg[name] if name in cfg and OmegaConf.is_dict(cfg[name]) else {}
        if s.get("kind") == "self_label":
            need(s.num_problems >= 1, f"{name}.num_problems must be >= 1 (got {s.num_problems}).")
            need(s.length_filter >= 0, f"{name}.length_filter must be >= 0 tokens, 0 for off (got {s.length_filter}).")
            need(s.vote_samples >= 0, f"{name}.vote_samples must be >= 0, 0 for off (got {s.vote_samples}).")
            for key in ("vote_threshold", "model_vote_threshold"):
                need(0 < s[key] <= 1, f"{name}.{key} is the share of votes a label needs and must be in (0, 1] "
                                      f"(got {s[key]}); the paper keeps labels 70% of the models agree on: 0.7.")
        if s.get("kind") == "mix":
            need(s.rows >= 1, f"{name}.rows must be >= 1 (got {s.rows}); set it to train.steps x train.batch_size.")
            need(0 < s.newest_share <= 1, f"{name}.newest_share must be in (0, 1] (got {s.newest_share}); the paper's is 0.5.")
    if cfg.task.name != "reverse_addition":
        return
    t = cfg.task
    need(t.start_length >= 1, f"task.start_length must be >= 1 (got {t.start_length}): round 0 trains on operand "
                              f"lengths 1..start_length, e.g. task.start_length=8.")
    need(t.lengths_per_round >= 1, f"task.lengths_per_round must be >= 1 (got {t.lengths_per_round}).")
    if t.start_length < 1 or t.lengths_per_round < 1:
        return
    trained = longest = t.start_length + cfg.iterations * t.lengths_per_round
    ev = [cfg[n] for n in names if n in cfg and OmegaConf.is_dict(cfg[n]) and cfg[n].get("kind") == "evaluate_lengths"]
    for e in ev:
        need(len(e.window) == 2 and e.window[0] <= e.window[1],
             f"evaluate_lengths.window must be [first, last] relative to the trained length, e.g. [-3, 5] (got {list(e.window)}).")
        if len(e.window) == 2:
            longest = max([longest, longest + e.window[1], *e.lengths])
    def positions_of(n: int) -> int:  # BOS, operands, '+', '=', padded target, EOS
        return 1 + (2 * n + 2) + (n + 1) + 1

    positions = positions_of(longest)
    if cfg.model.name_or_path is None:
        limit = cfg.model.tiny.max_position_embeddings
        need(positions <= limit,
             f"the schedule reaches {longest}-digit problems (task.start_length={t.start_length} + iterations="
             f"{cfg.iterations} x task.lengths_per_round={t.lengths_per_round}, plus the evaluation window), which "
             f"take {positions} positions, but the model has model.tiny.max_position_embeddings={limit}. Raise it "
             f"with model.tiny.max_position_embeddings={positions}, or lower iterations.")
    for name in dict.fromkeys(cfg.stages):  # the rounds' train stages (setup trains on 1..start_length only)
        s = cfg[name] if name in cfg and OmegaConf.is_dict(cfg[name]) else {}
        if s.get("kind") == "sft" and s.get("enabled", True):
            need(s.max_length is None or positions_of(trained) <= s.max_length,
                 f"the schedule trains on {trained}-digit problems ({positions_of(trained)} tokens) but {name}.max_length="
                 f"{s.max_length} would cut them off; set {name}.max_length={positions_of(trained)} or more, or lower "
                 f"iterations.")


JUDGE_KINDS = ("judge", "judge_seed", "judge_quality")


def judge_problems(cfg: Any, names: list[str]) -> list[str]:
    """Self-Rewarding's startup checks: the judge template has its placeholders, and the score
    regex reads scores from the EFT data the model will be taught (else every judgment would be
    unparseable, an hour later)."""
    used = [n for n in names if n in cfg and OmegaConf.is_dict(cfg[n]) and cfg[n].get("kind") in JUDGE_KINDS
            and cfg[n].enabled]
    out: list[str] = []
    if not used:
        return out
    from .judges import JudgeConfigError, check_regex_on, compile_score_regex, load_template

    for name in used:
        s = cfg[name]
        if "samples" in s and s.samples < 1:
            out.append(f"{name}.samples must be >= 1 (got {s.samples}); the paper judges each response 3 times.")
        if s.max_score <= s.min_score:
            out.append(f"{name}.max_score must be above {name}.min_score (got {s.min_score}..{s.max_score}).")
    for name in ("self_instruct",):
        if name in cfg and name in names and cfg[name].enabled:
            if cfg[name].num_prompts < 1 or cfg[name].shots < 1:
                out.append(f"{name}.num_prompts and {name}.shots must be >= 1.")
            w = cfg[name].difficulty_weights
            if w is not None and (not len(w) or min(w) < 0 or sum(w) <= 0):
                out.append(f"{name}.difficulty_weights must be non-negative shares per difficulty 1, 2, ... with a "
                           f"positive sum, e.g. [0, 0, 0, 1] for 4-digit problems only, or null to keep all "
                           f"(got {list(w)}).")
    for name in used:
        if cfg[name].kind == "judge_seed" and cfg[name].eft_source not in ("seed", "train"):
            out.append(f"{name}.eft_source must be 'seed' (the worked examples' problems) or 'train' (the training "
                       f"pool's problems) (got '{cfg[name].eft_source}').")
    try:
        s = cfg[used[0]]
        load_template(s.template)
        rx = compile_score_regex(s.score_regex)
        from .tasks import JudgingTask, TaskDataError, build_task

        eft: list = []
        try:
            task = build_task(cfg.task)
            if not isinstance(task, JudgingTask):
                out.append(f"stages {used} judge the model's answers, and task={cfg.task.name} offers no judge seed "
                           "data or self-instruction format; use task=arithmetic, or task=prompts with task.seed_path.")
            elif any(cfg[n].kind == "judge_seed" for n in used):
                eft = task.eft_examples(task.splits().get("seed", [])[:50], 2, 0)
                check_regex_on(rx, [e["judgment"] for e in eft], s.min_score, s.max_score, f"task={cfg.task.name}")
        except TaskDataError as exc:
            out.append(str(exc))
    except JudgeConfigError as exc:
        out.append(str(exc))
    return out
