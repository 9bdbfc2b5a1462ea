"""The README's benchmark tables are exactly what benchmarks/readme_tables.py generates from
the committed `vidrestore bench` output (no number typed by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_bench_tables_are_generated():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    runs = [f"quick={ROOT / 'benchmarks/results/bench_quick'}"]
    if (ROOT / "benchmarks/results/bench_main/tuned.json").exists():
        runs.append(f"main={ROOT / 'benchmarks/results/bench_main'}")
    args = ["--protocol", str(ROOT / "benchmarks/protocol.yaml"), "--readme", str(ROOT / "README.md"), "--check"]
    for r in runs:
        args += ["--run", r]
    assert mod.main(args) == 0, "README.md is out of date: run benchmarks/readme_tables.py"
