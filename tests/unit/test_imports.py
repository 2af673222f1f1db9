"""Imports run one way down: no import circle among the package's parts (its top-level modules and
subpackages), and no module imports one from a layer above its own (ARCHITECTURE.md, "Layers").
Every import counts, including those inside functions (an import deferred to keep `selfimprove
--help` fast is still a dependency). Inside one subpackage, its `__init__` may load its plugins
(tasks.build_task imports each task module, which imports the package's registry back)."""
import ast
from pathlib import Path

import selfimprove

PACKAGE = Path(selfimprove.__file__).parent

# Lowest first. A module may import from its own layer and the layers below. Modules not listed
# (a new package's) are checked for circles only.
LAYERS = [
    ["errors", "paths", "registry", "rundir", "compute", "metrics", "bestofk", "slurm"],
    ["tasks", "models", "judges"],
    ["backends", "tracking"],
    ["context"],
    ["sampling", "sharding", "provenance"],
    ["training", "verifier", "best_of_k_eval", "score_lora", "easy_to_hard"],
    ["stages"],
    ["config"],
    ["pipeline"],
    ["cli", "analysis"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the package modules it imports (statically, anywhere in the file)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            for c in candidates:
                if c in modules and c != mod:
                    graph[mod].add(c)
    return graph


def part(module: str) -> str:
    """The top-level module or subpackage a module belongs to: selfimprove.backends.hf -> backends."""
    return module.split(".")[1] if "." in module else module


def parts_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        out.setdefault(part(mod), set()).update(part(t) for t in targets if part(t) != part(mod))
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(module: str):
    return LAYER.get(part(module))


def test_no_import_circle_between_parts_of_the_package():
    assert circles(parts_graph(imports())) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_run_one_way_down():
    up = [f"{m} -> {t}" for m, targets in imports().items() for t in targets
          if layer(m) is not None and layer(t) is not None and layer(t) > layer(m)]
    assert up == []


def test_every_top_level_module_has_a_layer():
    top = {module_name(p).split(".")[1] for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    top |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert top - set(LAYER) == set(), "add it to LAYERS (and to ARCHITECTURE.md's table)"
