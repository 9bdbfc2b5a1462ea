"""Insert `vidrestore bench` results into README.md between markers; nothing is typed by hand.

    python benchmarks/readme_tables.py [--readme README.md] [--check]    # the project's runs
    python benchmarks/readme_tables.py --run quick=DIR [--run main=DIR] \
        [--run v2=DIR --protocol-for v2=benchmarks/protocol_prior_v2.yaml --show v2=svi,svi-v2 --pair v2=svi-v2:svi]
        [--run v2-diffir2vr=DIR --protocol-for v2-diffir2vr=benchmarks/protocol_prior_v2.yaml
         --show v2-diffir2vr=diffir2vr,diffir2vr-v2 --pair v2-diffir2vr=diffir2vr-v2:diffir2vr]

Each RUN folder holds what `vidrestore bench` wrote (protocol.yaml copy is not needed: the
protocol is read from --protocol, with --quick applied for runs named "quick"). The README
blocks

    <!-- bench:NAME:table -->  ...  <!-- /bench:NAME:table -->
    <!-- bench:NAME:status -->  ...  <!-- /bench:NAME:status -->

are replaced by a compact table (test split, PSNR mean ± 95 % interval per task and method,
and each learned method's paired difference to the best classical method) and by a one-line
status generated from the same numbers. The blocks ``<!-- bench:include:NAME -->`` of
:data:`INCLUDES` receive the named result file as written by its benchmark script (without its
title line). --check exits 1 when README.md is not up to date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from vidrestore.workflows.bench import _pm, _size_text, load_protocol, paired_diff, task_results, verdict


ROOT = Path(__file__).resolve().parents[1]

#: README blocks filled with a benchmark's own result file (path relative to the repository).
INCLUDES = {
    "pvdnet-heldout": "benchmarks/results/pvdnet_heldout_avg5.md",
    "pvdnet-r4-heldout": "benchmarks/results/pvdnet_recipe/heldout_real_new/pvdnet_heldout_avg5.md",
    "pvdnet-families": "benchmarks/results/pvdnet_recipe/families_holdout.md",
    "lgcvd-digits": "benchmarks/results/lgcvd_table_summary.md",
    "speed": "benchmarks/results/speed.md",
}


#: The project's runs, used when no --run is given (those whose folder exists): name, folder,
#: protocol, methods shown (None: all) and paired columns.
PROJECT_RUNS = [
    ("quick", "benchmarks/results/bench_quick", "benchmarks/protocol.yaml", None, []),
    ("main", "benchmarks/results/bench_main", "benchmarks/protocol.yaml", None, []),
    ("v2", "benchmarks/results/bench_prior_v2", "benchmarks/protocol_prior_v2.yaml", ["svi", "svi-v2"], [("svi-v2", "svi")]),
    ("v2-diffir2vr", "benchmarks/results/bench_prior_v2", "benchmarks/protocol_prior_v2.yaml", ["diffir2vr", "diffir2vr-v2"],
     [("diffir2vr-v2", "diffir2vr")]),
]


def _included(path: Path) -> str:
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def _tables(protocol, run_dir: Path, show: list[str] | None = None, pairs: list[tuple[str, str]] = ()) -> tuple[str, str]:
    import csv

    with open(run_dir / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tuned = json.loads((run_dir / "tuned.json").read_text())
    out, counts, pending = [], {}, []
    expected = len(protocol.test) * len(protocol.seeds)
    for size in protocol.sizes:
        st = _size_text(size)
        results = {}
        for t, task in protocol.tasks.items():
            # equal-budget variants run after every test phase: a task is finished without them
            runs_here = [m for m, bm in protocol.methods.items() if protocol.runs_for(bm, task, size) and bm.budget_match is None]
            if not runs_here:
                continue
            r = task_results(protocol, rows, st, t, tuned)
            if show and not any(m in r["methods"] for m in show):
                continue  # none of the shown methods runs this task
            # only finished tasks are shown: every method with all its test runs
            if all(m in r["methods"] and r["methods"][m]["n_runs"] >= expected for m in runs_here):
                results[t] = r
            else:
                pending.append(f"{t} ({st})")
        if not results:
            continue
        methods = [m for m in protocol.methods if any(m in r["methods"] for r in results.values())]
        if show:
            methods = [m for m in methods if m in show]
        learned = [m for m in methods if not protocol.methods[m].classical]
        n_clips = len(protocol.test)
        out.append(f"**{st}**, {protocol.frames} frames, test clips {', '.join(protocol.test)}, seeds {', '.join(map(str, protocol.seeds))}; "
                   f"PSNR in dB, mean ± 95 % interval over the {n_clips} clips.")
        out.append("")
        head = (["task", "σ_y", "best classical (tune)"] + methods + [f"{m} − best classical" for m in learned]
                + [f"{a} − {b}" for a, b in pairs])
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for t, r in results.items():
            task = protocol.tasks[t]
            cells = [f"{t} `{task.op}`", f"{task.sigma_y:g}", r["best_classical"] or "–"]
            for m in methods:
                s = r["methods"].get(m)
                cells.append(_pm(*s["psnr"]) if s else "–")
            for m in learned:
                s = r["methods"].get(m)
                if s and "diff" in s:
                    v = verdict(*s["diff"])
                    counts.setdefault(m, {}).setdefault(v, []).append(t)
                    cells.append(f"{_pm(*s['diff'])} ({v})")
                else:
                    cells.append("–")
            for a, b in pairs:
                sa, sb = r["methods"].get(a), r["methods"].get(b)
                d = paired_diff(sa["rows"], sb["rows"]) if sa and sb else None
                cells.append(f"{_pm(*d)} ({verdict(*d)})" if d else "–")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    status = []
    for m, by in counts.items():
        n = sum(len(v) for v in by.values())
        parts = []
        for k in ("better", "no clear difference", "worse"):
            names = by.get(k, [])
            parts.append(f"{k} on {len(names)}" + (f" ({', '.join(names)})" if names and k != "no clear difference" else ""))
        status.append(f"**{m}** against the best tuned classical method on {n} task(s): {', '.join(parts)}.")
    if pending:
        out.append(f"Not yet finished ({len(pending)} task(s); resume the run to complete them): {', '.join(pending)}.")
        out.append("")
        status.append(f"({len(pending)} more task(s) of this protocol are not finished yet.)")
    return "\n".join(out).rstrip() + "\n", " ".join(s for s in status if s) + "\n"


def _replace(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n)(.*?)(<!-- /bench:{re.escape(name)} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"README has no block <!-- bench:{name} --> ... <!-- /bench:{name} -->")
    return pat.sub(lambda m: m.group(1) + body + m.group(3), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", default="benchmarks/protocol.yaml")
    ap.add_argument("--run", action="append", default=[], help="NAME=DIR (NAME 'quick' applies the protocol's quick block); "
                    "default: the project's runs (PROJECT_RUNS) whose folders exist")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--protocol-for", action="append", default=[], help="NAME=PROTOCOL: the protocol of run NAME (default --protocol)")
    ap.add_argument("--show", action="append", default=[], help="NAME=M1,M2,...: only these methods in run NAME's table")
    ap.add_argument("--pair", action="append", default=[], help="NAME=A:B: a column with the paired difference A - B in run NAME's table")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    readme = Path(a.readme)
    text = readme.read_text()
    new = text
    def per_run(specs):
        out: dict[str, list[str]] = {}
        for spec in specs:
            name, _, value = spec.partition("=")
            out.setdefault(name, []).append(value)
        return out

    protocols, shows, pairs = per_run(a.protocol_for), per_run(a.show), per_run(a.pair)
    runs = []
    for spec in a.run:
        name, _, folder = spec.partition("=")
        runs.append((name, Path(folder), protocols.get(name, [a.protocol])[-1],
                     [m for v in shows.get(name, []) for m in v.split(",")] or None, [tuple(v.split(":", 1)) for v in pairs.get(name, [])]))
    if not a.run:
        runs = [(n, ROOT / d, ROOT / p, show, pair) for n, d, p, show, pair in PROJECT_RUNS if (ROOT / d / "tuned.json").exists()]
    for name, folder, protocol, show, pair in runs:
        proto = load_protocol(protocol, quick=name == "quick")
        table, status = _tables(proto, folder, show, pair)
        new = _replace(new, f"{name}:table", table)
        new = _replace(new, f"{name}:status", status)
    for name, rel in INCLUDES.items():
        new = _replace(new, f"include:{name}", _included(ROOT / rel))
    if a.check:
        return 0 if new == text else 1
    readme.write_text(new)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
