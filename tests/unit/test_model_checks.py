"""Startup checks on model.name_or_path: a model that cannot be loaded stops the command before any
stage, with the fix (the fetch command, the tokenizer to add, chat_template=false)."""
import json
import shutil

import pytest

from selfimprove.config.compose import compose
from selfimprove.config import ConfigError, TinyModelConfig
from selfimprove.models.tiny import save_tiny
from tests.cli_errors import cli_fails

TINY = TinyModelConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)



def test_an_unreachable_preset_gives_the_command_that_fetches_it(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # nothing in the cache either
    err = cli_fails(["validate", "recipe=star", "model=smollm2-135m-instruct"], capsys)
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in err and "`selfimprove models fetch-smollm2`" in err
    # a preset without a fetch command gets the generic download advice
    err = cli_fails(["validate", "recipe=star", "model=qwen2.5-0.5b-instruct"], capsys)
    assert "huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct --local-dir DIR" in err


def test_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such folder.*fetch-smollm2"):
        compose(["model=smollm2-135m-instruct", f"model.name_or_path={tmp_path / 'nothing'}"])


def test_a_folder_without_a_tokenizer(tmp_path):
    folder = save_tiny(TINY, tmp_path / "m", seed=0)
    for f in folder.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            f.unlink()
    with pytest.raises(ConfigError, match=r"has no tokenizer .*save_pretrained"):
        compose([f"model.name_or_path={folder}"])


def test_chat_template_true_on_a_tokenizer_without_one(tmp_path):
    folder = save_tiny(TINY, tmp_path / "m", seed=0)  # the tiny char tokenizer has no chat template
    compose([f"model.name_or_path={folder}"])  # plain-text prompts are fine
    with pytest.raises(ConfigError, match="model.chat_template=true but the tokenizer in .* has no chat template.*"
                                          "model.chat_template=false"):
        compose([f"model.name_or_path={folder}", "model.chat_template=true"])
    # a template in tokenizer_config.json (older transformers) or chat_template.jinja counts
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": "{{ messages }}"}))
    compose([f"model.name_or_path={folder}", "model.chat_template=true"])


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "gguf-only").mkdir()
    shutil.copy(__file__, tmp_path / "gguf-only" / "model.gguf")
    with pytest.raises(ConfigError, match="no config.json.*selfimprove models import-gguf"):
        compose([f"model.name_or_path={tmp_path / 'gguf-only'}"])
