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
from typing import Any, List, Optional, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf

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
    # SCoRe's second turn (recipe=score task=gsm8k): "{attempt}" then the instruction that follows
    # the first attempt (with a chat template, a new user turn); the paper's instruction for MATH.
    # It never says whether the attempt was right. null: a one-turn task
    correction_template: Optional[str] = (
        "{attempt}\n\nThere might be an error in the solution above because of lack of understanding of the "
        "question. Please correct the error, if any, and rewrite the solution, ending with the line "
        "'#### <answer>'.\nA:")


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
    """What every run has, whatever its recipe. The stage sections are not here: a recipe's
    `setup` and `stages` lists name them, and each section is checked against the dataclass of its
    `kind` (registered next to the stage's code; see `typed_config`)."""

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
    # The stage lists: each entry names a section of this config, e.g. `train: {kind: sft, ...}`;
    # a section named after its kind (generate, filter, evaluate...) may leave `kind` out.
    setup: List[str] = MISSING
    stages: List[str] = MISSING
    # stages of `stages` that run in the last iteration only (V-STaR trains its verifier once,
    # after the last iteration; empty the list to train one every iteration)
    last_iteration_only: List[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: Any = MISSING
    backend: Any = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)


SHARED_KEYS = tuple(f.name for f in fields(RunConfig))


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


class Problems(list):
    """What a stage kind's `check(name, section, cfg)` returns: each message says what to write instead."""

    def need(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


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

    from .stages import stage_kinds

    cs = ConfigStore.instance()
    # The root is an open map: a recipe may add any stage section (`polish: {kind: sft}`). Its shared
    # sections stay typed, so `model.tiny.hiden_size=...` still fails while composing; stage sections
    # are typed by `typed_config` once the recipe's stage lists are known.
    root = OmegaConf.create({})
    for f in fields(RunConfig):
        root[f.name] = OmegaConf.structured(RunConfig)._get_node(f.name)
    # An open placeholder per kind, so that `evaluate.num_samples=16` can set a section the recipe
    # file leaves to its defaults; its keys are checked against the kind's schema afterwards.
    for kind in stage_kinds():
        root[kind] = OmegaConf.create({})
        OmegaConf.set_struct(root[kind], False)
    cs.store(name="run_schema", node=root)
    for (group, name), schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=name, node=schema)
    for name, path in available_recipes().items():
        recipe = OmegaConf.load(path)
        for key in recipe:  # the recipe's stage sections stay open too: `train.max_epochs=2` sets a
            if key not in SHARED_KEYS and OmegaConf.is_dict(recipe._get_node(key)):  # key the file leaves out
                OmegaConf.set_struct(recipe[key], False)
        cs.store(group="recipe", name=name, node=recipe, package="_global_")


def recipe_problems(name: str) -> list[str]:
    """A recipe file's top-level keys are shared settings or sections its own stage lists name: a
    misspelled section (`trian:`) would otherwise be dropped with the unused ones, silently."""
    path = available_recipes().get(name)
    if path is None:
        return []
    recipe = OmegaConf.to_container(OmegaConf.load(path))
    lists = [s for key in ("setup", "stages") for s in recipe.get(key) or []]
    if not all(key in recipe for key in ("setup", "stages")):
        return [f"recipe {path} must list its stages: `setup: [...]` (run once) and `stages: [...]` (each "
                f"iteration), e.g. setup: [prepare, seed_sft, evaluate]."]
    extra = [k for k in recipe if k not in SHARED_KEYS and k not in lists and k != "defaults"]
    return [f"recipe {path} has a section '{k}' that neither `setup` nor `stages` names"
            + (f" (did you mean '{near[0]}'?)" if (near := difflib.get_close_matches(k, lists, n=1)) else "")
            + f"; its stages are {', '.join(dict.fromkeys(lists))}. Add '{k}' to a stage list or remove the section."
            for k in extra]


def typed_config(raw: Any, recipe: Optional[str] = None) -> DictConfig:
    """The composed config as a run reads it: the shared keys checked against RunConfig, and one
    section per stage the lists name, checked against its kind's dataclass, whose defaults fill in
    what the recipe leaves out. A section's kind is its `kind` key, or its name when that is a
    kind. Sections no list names are dropped: profiles and model presets size every training
    section any recipe may have (m1_sft, dpo, grpo...), and a run holds only its own."""
    from omegaconf.errors import OmegaConfBaseException

    from .stages import stage_kinds

    problems = recipe_problems(recipe) if recipe else []
    for key in ("setup", "stages"):
        if key not in raw or OmegaConf.is_missing(raw, key):
            problems.append(f"`{key}` is not set: a recipe lists its stages in `setup` (run once) and `stages` "
                            f"(each iteration), e.g. setup: [prepare, seed_sft, evaluate].")
    if problems:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))
    try:
        shared = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.masked_copy(raw, [k for k in SHARED_KEYS if k in raw]))
    except OmegaConfBaseException as exc:
        raise ConfigError(explain_config_error(exc) or str(exc)) from None
    out = OmegaConf.create({})
    for key in SHARED_KEYS:
        out[key] = shared._get_node(key)
    kinds = stage_kinds()
    todo = list(dict.fromkeys([*shared.setup, *shared.stages]))
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        section = raw._get_node(name) if name in raw else OmegaConf.create({})
        if not OmegaConf.is_dict(section):
            raise ConfigError(f"stage '{name}' must be a config section (e.g. {name}: {{kind: sft}}), not "
                              f"{OmegaConf.to_container(raw, resolve=False)[name]!r}.")
        kind = section.get("kind", name if name in kinds else None)
        if kind not in kinds:
            known = ", ".join(sorted(kinds))
            raise ConfigError(
                f"stage '{name}' in the stage lists has no kind: add a section `{name}: {{kind: ...}}` to the recipe "
                f"(or {name}.kind=... on the command line) with one of: {known}." if kind is None else
                f"stage '{name}' has kind '{kind}', which is not a stage kind. Available: {known}.")
        try:
            out[name] = OmegaConf.merge(OmegaConf.structured(kinds[kind].schema), section, {"kind": kind})
        except OmegaConfBaseException as exc:
            raise ConfigError(_in_recipe(explain_config_error(exc, section=name) or str(exc), name, recipe)) from None
        # a section another one reads (judge_quality's `${judge.template}`) comes along, unrun
        todo += [ref for ref in re.findall(r"\$\{(\w+)\.", str(OmegaConf.to_container(out[name])))
                 if ref in raw and ref not in SHARED_KEYS]
    OmegaConf.set_struct(out, True)
    return out


def _in_recipe(message: str, section: str, recipe: Optional[str]) -> str:
    """Add where a bad key was written when the recipe file holds it: "'train.betta' (in recipe/x)"."""
    m = re.search(rf"'{section}\.(\w+)'", message)
    if recipe and m and m.group(1) in (OmegaConf.load(available_recipes()[recipe]).get(section) or {}):
        return message.replace(m.group(0), f"{m.group(0)} (in recipe/{recipe})", 1)
    return message


# ----------------------------------------------------------------------------- validation
def _schema_named(name: str):
    """The config dataclass called `name`: a shared one here, or a stage kind's (or one nested in it)."""
    from .stages import stage_kinds

    todo = [RunConfig, *GROUP_SCHEMAS.values(), *(k.schema for k in stage_kinds().values())]
    while todo:
        schema = todo.pop()
        if schema.__name__ == name:
            return schema
        todo += [h for h in get_type_hints(schema).values() if is_dataclass(h)]
    return None


def _schema_at(path: list[str], kinds: Optional[dict] = None):
    """The dataclass describing the config node at `path`, or None (leaves). `kinds`: the kind of
    each stage section (section name -> kind), which says what schema a section has."""
    node: Any = RunConfig
    if path and path[0] not in SHARED_KEYS:
        from .stages import stage_kinds

        kind = (kinds or {}).get(path[0], path[0])
        node = stage_kinds()[kind].schema if kind in stage_kinds() else None
        path = path[1:]
    for part in path:
        hints = get_type_hints(node) if is_dataclass(node) else {}
        node = hints.get(part)
    return node if is_dataclass(node) else None


def explain_config_error(exc: BaseException, section: Optional[str] = None,
                         kinds: Optional[dict] = None) -> Optional[str]:
    """Turn a Hydra/OmegaConf composition error into a message that names the valid keys. `section`:
    the stage section the error came from (its keys are checked apart from the root); `kinds`: each
    stage section's kind, when known (a section's schema follows from its kind)."""
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
    m = re.search(r"Key '([^']+)' (?:not in|is not in) '?(\w+)'?\s+full_key: (\S+)", text)
    if m:
        key, _, full_key = m.groups()
        full_key = f"{section}.{full_key}" if section else full_key
        parent = full_key.split(".")[:-1]
        where = re.search(r"In '([^']+)'", text)
        origin = f" (in {where.group(1)})" if where and "recipe" in where.group(1) else ""
        obj = re.search(r"object_type=(\w+)", text)
        schema = _schema_named(obj.group(1)) if obj and obj.group(1) != "dict" else None
        schema = schema if is_dataclass(schema) else _schema_at(parent, kinds)
        if schema is not None:
            valid = [f.name for f in fields(schema)]
        elif not parent:  # the open root: shared keys and the sections composed so far
            valid = list(SHARED_KEYS) + ["<a stage section the recipe's stage lists name>"]
        else:
            valid = []
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" Did you mean '{'.'.join(parent + [near[0]])}'?" if near else ""
        plus = (" A new top-level key needs a leading +, e.g. +polish.kind=sft, and a stage list that names it."
                if not parent and "is not in struct" in text else "")
        where_keys = ".".join(parent) or "the top level"
        return (
            f"Unknown config key '{full_key}'{origin}. Valid keys in {where_keys}: "
            f"{', '.join(valid) or '(see the recipe)'}.{hint}{plus}"
        )
    m = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)\s+full_key: (\S+)", text)
    if m:
        value, typ, full_key = m.groups()
        full_key = f"{section}.{full_key}" if section else full_key
        return f"'{full_key}' must be of type {typ}, got '{value}'. Write for example {full_key}=" + {
            "Integer": "3", "Float": "0.7", "Boolean": "true"}.get(typ, "...") + "."
    return None


def validate(cfg: Any) -> None:
    """Semantic checks that a schema cannot express, on a `typed_config`. Raises ConfigError with
    advice. Checks of one stage kind's settings live with its dataclass (`check`); what spans
    sections (the objective, the test split, devices, the judge's template) is checked here."""
    from .stages import stage_kinds

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
    kind = cfg[stage].kind if stage in names else None
    need(kind not in ("evaluate", "evaluate_turns") or metric.startswith("val_"),
         f"objective={stage}.{metric} reads the test split, which is for reporting only; a sweep must choose on "
         f"validation: objective={stage}.val_{'accuracy' if kind == 'evaluate' else 'acc_t2'}.")
    extra = [s for s in cfg.get("last_iteration_only", []) if s not in cfg.stages]
    need(not extra, f"last_iteration_only lists {extra}, which are not in stages={list(cfg.stages)}.")
    kinds = stage_kinds()
    for name in names:
        s = cfg[name]
        if "temperature" in s:
            need(s.temperature >= 0, f"{name}.temperature must be >= 0 (got {s.temperature}); use 0 for greedy.")
        if "top_p" in s:
            need(0 < s.top_p <= 1, f"{name}.top_p must be in (0, 1] (got {s.top_p}).")
        if "k" in s and isinstance(s.k, int):
            need(s.k >= 1, f"{name}.k must be >= 1 (got {s.k}).")
        if "shards" in s:
            need(s.shards >= 1, f"{name}.shards must be >= 1 (got {s.shards}); 1 samples in this process.")
        # what is trained on or chosen by never comes from the test split (it is for reporting only)
        feeds = list(s.get("splits") or []) + ([s.split] if s.kind in ("generate", "score_rl", "tune") and "split" in s
                                              else [])
        need("test" not in feeds, f"{name} reads the test split, which is for reporting only; use train (or val "
                                  f"to choose something).")
        if "lora" in s and s.lora.enabled:  # train stages and the SCoRe trainer
            need(importlib_ok("peft"), f"{name}.lora.enabled needs peft: pip install \"selfimprove[lora]\".")
        check = getattr(kinds[s.kind].schema, "check", None)
        if check is not None:
            problems += check(name, s, cfg)
    _validate_easy_to_hard(cfg, names, need)
    if cfg.task.get("correction_template"):
        need(cfg.task.correction_template.startswith("{attempt}"),
             f"task.correction_template must begin with the placeholder {{attempt}}, where the first attempt goes: "
             f"the instruction follows it, as in the paper (got {cfg.task.correction_template!r}); e.g. "
             f"'{{attempt}}\\nCheck each step and fix any error.\\nA:'.")
        for key in ("blind_spot_rate", "demo_first_error_rate", "demo_fix_rate", "demo_break_rate"):
            need(0 <= cfg.task.get(key, 0) <= 1, f"task.{key} must be a share in [0, 1] (got {cfg.task.get(key)}).")
    if cfg.backend.name == "vllm":
        need(importlib_ok("vllm"), "backend=vllm needs vLLM, which is not installed: in a CUDA environment run "
                                   "`pip install \"selfimprove[vllm]\"`, or use backend=hf.")
    need(_device_available(cfg.device) is None, _device_available(cfg.device) or "")
    if "device" in cfg.backend and cfg.backend.device != "auto":
        need(_device_available(cfg.backend.device) is None, f"backend.{_device_available(cfg.backend.device) or ''}")
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


def importlib_ok(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


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
    from .easy_to_hard import positions_of

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
