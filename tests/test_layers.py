"""Architecture test: lower layers never import higher ones (conventions §2)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vidrestore"

L0 = {"tensor", "linalg", "errors", "__init__"}
# What each top-level unit may import from vidrestore (besides itself).
ALLOWED = {
    "tensor": {"errors"},
    "linalg": set(),
    "errors": set(),
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
