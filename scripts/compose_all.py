"""Write the typed config of every recipe x model preset x profile to a folder, one YAML each, so
that two checkouts can be compared with `diff -r` (a refactor must leave them identical):

    PYTHONPATH=A python scripts/compose_all.py A /tmp/before
    PYTHONPATH=B python scripts/compose_all.py B /tmp/after && diff -r /tmp/before /tmp/after
"""
import sys
from pathlib import Path

repo, out = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(repo))
try:
    from selfimprove.config.compose import compose
except ImportError:  # before the config/ package
    from selfimprove.cli import compose
from omegaconf import OmegaConf

from selfimprove.config import available_recipes

out.mkdir(parents=True, exist_ok=True)
for recipe in available_recipes():
    for model in sorted(p.stem for p in (repo / "conf" / "model").glob("*.yaml")):
        for profile in ("default", "debug"):
            try:
                text = OmegaConf.to_yaml(compose([f"recipe={recipe}", f"model={model}", f"profile={profile}"])[0])
            except Exception as exc:  # a combination that does not compose is part of the comparison
                text = f"ERROR {type(exc).__name__}: {exc}\n"
            (out / f"{recipe}__{model}__{profile}.yaml").write_text(text)
print(f"{len(list(out.iterdir()))} configs in {out}")
