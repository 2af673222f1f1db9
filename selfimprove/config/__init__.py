"""Composition and validation: above `stages/` (it types each stage section by its kind's
dataclass), below `pipeline.py` and `cli.py`, which hand it Hydra's composed config.

  schema.py    RunConfig (what every run has) and the `task=`/`backend=` option schemas
  recipes.py   recipe discovery and Hydra's ConfigStore registration
  typed.py     typed_config: the run's config, each stage section typed by its kind
  explain.py   OmegaConf/Hydra errors turned into messages that name the valid keys
  validate.py  semantic checks across sections (each kind checks its own in `check`)
  compose.py   compose + type + validate, the way `selfimprove run` does

The schemas of the model, tasks and backends live beside their code; they are re-exported here
because scripts and tests name them as `selfimprove.config.X`.
"""
from ..backends.schemas import HFBackendConfig, VLLMBackendConfig
from ..errors import ConfigError, Problems
from ..models.schema import ModelConfig, TinyModelConfig
from ..paths import CONF_DIR, PACKAGE_DIR, RECIPES_DIR
from ..tasks.schemas import (ArithmeticCorrectionTaskConfig, ArithmeticTaskConfig, GSM8KTaskConfig, MathTaskConfig,
                             PromptsTaskConfig, ReverseAdditionTaskConfig)
from .explain import explain_config_error
from .recipes import available_recipes, recipe_dirs, recipe_problems, register_configs
from .schema import (GROUP_SCHEMAS, RESUMABLE_CHANGES, SHARED_KEYS, UNFINGERPRINTED_STAGE_KEYS, RunConfig,
                     ShardingConfig, TrackingConfig)
from .typed import typed_config
from .validate import validate

__all__ = ["ArithmeticCorrectionTaskConfig", "ArithmeticTaskConfig", "CONF_DIR", "ConfigError", "GROUP_SCHEMAS",
           "GSM8KTaskConfig", "HFBackendConfig", "MathTaskConfig", "ModelConfig", "PACKAGE_DIR", "Problems",
           "PromptsTaskConfig", "RECIPES_DIR", "RESUMABLE_CHANGES", "ReverseAdditionTaskConfig", "RunConfig",
           "SHARED_KEYS", "ShardingConfig", "TinyModelConfig", "TrackingConfig", "UNFINGERPRINTED_STAGE_KEYS",
           "VLLMBackendConfig", "available_recipes", "explain_config_error", "recipe_dirs", "recipe_problems",
           "register_configs", "typed_config", "validate"]
