"""Compose a run's config the way `selfimprove run` does (Hydra, then `typed_config`, then
`validate`), once per distinct value of every sweep parameter, raising ConfigError with advice.

A config validated here is remembered (VALIDATED), so that the Hydra job that runs it in this
process types it and hands it to the pipeline without checking it again (a sweep's other
combinations, or a job on another node, are validated where they run)."""
from __future__ import annotations

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..paths import CONF_DIR
from .explain import explain_config_error
from .recipes import register_configs
from .typed import later_keys, typed_config
from .validate import validate

VALIDATED: set[str] = set()  # the YAML of each config validated in this process


def prepared(raw, choices: dict, overrides: list[str]):
    """The run's typed config from Hydra's composed `raw` (its group `choices`, its command-line
    `overrides`), validated unless this process already validated the same config (`compose`
    below, before Hydra started the job)."""
    cfg = typed_config(raw, choices.get("recipe"), later_keys(choices, overrides))
    if OmegaConf.to_yaml(cfg) not in VALIDATED:
        validate(cfg)
        VALIDATED.add(OmegaConf.to_yaml(cfg))
    return cfg


def _expanded(overrides: list[str]) -> list[list[str]]:
    """One override list per distinct value of every sweep parameter (not the full product):
    enough to validate each value a sweep will use."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for o in overrides:  # one at a time, so the message can name the one Hydra's grammar rejects
        try:
            parser.parse_overrides([o])
        except OverrideParseException as exc:
            key, _, value = o.partition("=")
            raise ConfigError(
                f"Hydra cannot parse the override {o!r}: {str(exc).splitlines()[0]}\n"
                f"Characters such as ( ) [ ] {{ }} , : = and spaces are part of Hydra's override grammar. "
                f"Quote the value, and quote the whole argument for your shell: '{key}=\"{value}\"' "
                f"(https://hydra.cc/docs/advanced/override_grammar/basic/)."
            ) from None
    parsed = parser.parse_overrides(overrides)
    firsts, sweeps = [], []
    for o in parsed:
        if o.is_sweep_override():
            sweep = o.value()
            # interval(a,b) (Optuna, Nevergrad) cannot be enumerated: check its two ends
            values = ([str(sweep.start), str(sweep.end)] if isinstance(sweep, IntervalSweep)
                      else list(o.sweep_string_iterator()))
            firsts.append(f"{o.get_key_element()}={values[0]}")
            sweeps.append((len(firsts) - 1, o.get_key_element(), values[1:]))
        else:
            firsts.append(o.input_line)
    variants = [firsts]
    for i, key, rest in sweeps:
        for v in rest:
            variants.append(firsts[:i] + [f"{key}={v}"] + firsts[i + 1:])
    return variants


def compose(overrides: list[str]):
    """Compose and validate the config the way `run` will, raising ConfigError with advice."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from omegaconf import open_dict

    register_configs()
    GlobalHydra.instance().clear()
    cfgs = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for variant in _expanded([o for o in overrides if not o.startswith(("hydra.", "hydra/"))]):
            try:
                raw = hydra_compose(config_name="config", overrides=variant, return_hydra_config=True)
            except (HydraException, OmegaConfBaseException) as exc:
                raise ConfigError(explain_config_error(exc, kinds=_section_kinds(variant)) or str(exc)) from None
            choices = dict(raw.hydra.runtime.choices)
            with open_dict(raw):
                del raw["hydra"]
            cfg = typed_config(raw, choices.get("recipe"), later_keys(choices, variant))
            validate(cfg)
            VALIDATED.add(OmegaConf.to_yaml(cfg))
            cfgs.append(cfg)
    GlobalHydra.instance().clear()
    return cfgs


def _section_kinds(variant: list[str]) -> dict:
    """Each stage section's kind in the config the group choices alone compose (recipe=, model=...):
    an unknown key in `train.` is explained with the valid keys of train's kind (sft)."""
    from hydra import compose as hydra_compose

    choices = [o for o in variant if "." not in o.partition("=")[0] and not o.startswith(("+", "~"))]
    try:
        raw = hydra_compose(config_name="config", overrides=choices)
    except Exception:  # the choices themselves are wrong: that error is explained on its own
        return {}
    return {k: node.get("kind", k) for k in raw if OmegaConf.is_dict(node := raw._get_node(k))}
