"""Startup checks on `model.name_or_path`, so that a model that cannot be loaded stops the run
before any stage, with the fix, instead of a transformers traceback minutes into a stage.

Local folders are checked on every compose (a few stat calls); a hub id only by `run` and
`validate` (`hub_problems`), since telling whether the hub is reachable needs the network.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def is_hub_id(name: str) -> bool:
    """'org/name' that is not a folder here; anything else (absolute, relative, ~) is a path."""
    return not Path(name).expanduser().exists() and name.count("/") == 1 and not name.startswith((".", "/", "~"))


def _fetch_advice(model_cfg, name: str) -> str:
    if model_cfg.fetch:
        return f"Fetch it with `{model_cfg.fetch}` and pass model.name_or_path=<the folder it prints>."
    return (f"Download it where the hub is reachable (`huggingface-cli download {name} --local-dir DIR`) "
            "and pass model.name_or_path=DIR.")


def has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


def local_problems(model_cfg) -> list[str]:
    name = model_cfg.name_or_path
    if not name or is_hub_id(name):
        return []
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return [f"model.name_or_path={name}: no such folder. {_fetch_advice(model_cfg, name)}"]
    if not (folder / "config.json").is_file():
        return [f"model.name_or_path={name} has no config.json, so it is not a Hugging Face model folder. A GGUF "
                "file can be turned into one with `selfimprove models import-gguf FILE.gguf --out DIR`."]
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        return [f"model folder {name} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}). Save the tokenizer "
                f"of the model it was made from into it: python -c \"from transformers import AutoTokenizer; "
                f"AutoTokenizer.from_pretrained('ORIGINAL').save_pretrained('{name}')\"."]
    if model_cfg.chat_template and not has_chat_template(folder):
        return [f"model.chat_template=true but the tokenizer in {name} has no chat template (no chat_template.jinja, "
                "no chat_template in tokenizer_config.json). Set model.chat_template=false to give this model "
                "plain-text prompts (a base model), or put the template it was trained with in "
                f"{name}/chat_template.jinja."]
    return []


def hub_problems(model_cfg) -> list[str]:
    """A hub id that is neither in the local Hugging Face cache nor reachable: the fetch command."""
    name = model_cfg.name_or_path
    if not name or not is_hub_id(name):
        return []
    from huggingface_hub import HfApi, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return []
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            HfApi().model_info(name, timeout=10)
            return []
        except Exception as exc:  # offline, DNS, gated, 404: each means we cannot load it now
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return [f"model.name_or_path={name} is not a local folder, not in the Hugging Face cache, and the hub cannot be "
            f"reached ({why}). {_fetch_advice(model_cfg, name)}"]
