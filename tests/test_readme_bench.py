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
    # the project's runs (benchmarks/readme_tables.py PROJECT_RUNS) whose result folders exist
    assert mod.main(["--readme", str(ROOT / "README.md"), "--check"]) == 0, "README.md is out of date: run benchmarks/readme_tables.py"
