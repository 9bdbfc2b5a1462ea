"""Architecture test: lower layers never import higher ones (conventions §2)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vidrestore"

L0 = {"tensor", "linalg", "errors", "tiling", "heartbeat", "__init__"}
# What each top-level unit may import from vidrestore (besides itself).
ALLOWED = {
    "tensor": {"errors"},
    "linalg": set(),
    "errors": set(),
    "tiling": {"errors", "heartbeat"},
    "heartbeat": set(),
    "__init__": {"priors"},  # lazy re-export of load_prior inside __getattr__
    "ops": L0,
    "flow": L0,
    "io": L0,
    "metrics": L0 | {"flow"},
    "nets": L0,
    "diffusion": L0,
    "solvers": L0 | {"ops", "diffusion"},
    # DiffIR2VR-Zero wrapper (solvers level): flow + the ADM attention type + the solvers' hooks.
    "consistency": L0 | {"ops", "flow", "nets", "diffusion", "solvers"},
    "checkpoint": L0 | {"nets"},
    "data": L0 | {"ops", "io"},
    "priors": L0 | {"nets", "diffusion", "checkpoint"},
    "train": L0 | {"ops", "flow", "io", "metrics", "nets", "diffusion", "solvers", "checkpoint", "data", "priors"},
    "workflows": L0 | {"ops", "flow", "io", "metrics", "nets", "diffusion", "solvers", "checkpoint", "data", "priors", "train", "consistency"},
    # the web app (vidrestore ui): a front end like the CLI, one layer below it.
    "ui": L0 | {"ops", "flow", "io", "metrics", "nets", "diffusion", "solvers", "checkpoint", "data", "priors", "train", "consistency", "workflows"},
    "cli": None,  # top layer: anything
}


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(SRC).parent.parts  # package of this module, relative to vidrestore
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg)[: len(pkg) - (node.level - 1)] if node.level > 1 else list(pkg)
                mod = base + (node.module.split(".") if node.module else [])
                if mod:
                    yield mod[0]
                else:  # "from .. import x"
                    for a in node.names:
                        yield a.name
            elif node.module and node.module.split(".")[0] == "vidrestore":
                parts = node.module.split(".")
                yield parts[1] if len(parts) > 1 else "__init__"
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "vidrestore" and len(parts) > 1:
                    yield parts[1]


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_layering(path):
    unit = _unit(path)
    assert unit in ALLOWED, f"new top-level unit {unit!r}: add it to the layer table"
    allowed = ALLOWED[unit]
    if allowed is None:
        return
    bad = sorted({m for m in _imports(path) if m != unit and m not in allowed and m != "__version__"})
    assert not bad, f"{path.relative_to(SRC)} ({unit}) imports {bad}; allowed: {sorted(allowed)}"


def test_detector_catches_violation(tmp_path):
    # Self-test of the parser on a synthetic module.
    p = SRC / "ops" / "base.py"
    found = set(_imports(p))
    assert "errors" in found and "linalg" in found


# --------------------------------------------------------------------------- module cycles


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in FILES}


def _resolve(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``None``: external)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def _module_imports(mod: str, path: Path) -> set[str]:
    """Modules of vidrestore that ``mod`` imports anywhere in its file (function-level imports
    included); imports of its own parent packages are left out (Python has imported those
    before ``mod`` runs)."""
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - (node.level - 1)] + (node.module.split(".") if node.module else []))
            elif node.module and node.module.split(".")[0] == "vidrestore":
                base = node.module
            else:
                continue
            for a in node.names:  # "from .pkg import submodule" imports the submodule
                out.add(_resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in MODULES else _resolve(base))
        elif isinstance(node, ast.Import):
            out.update(_resolve(a.name) for a in node.names if a.name.split(".")[0] == "vidrestore")
    return {t for t in out if t and t != mod and not mod.startswith(t + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles_between_modules():
    """No two modules of vidrestore import each other, directly or through others, even with
    imports inside functions (a lazy import hides a cycle from Python, not from readers)."""
    graph = {m: _module_imports(m, p) for m, p in MODULES.items()}
    assert _cycles(graph) == []


def test_cycle_detector_catches_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert "vidrestore.workflows.methods" in _module_imports("vidrestore.workflows.worker", MODULES["vidrestore.workflows.worker"])
