"""Asset Ledger performance figures: ``make bench`` (full) or ``python benchmarks/run.py --smoke``.

Prints one table (figure, target, measured, ratio) and writes ``benchmarks/results/latest.md``,
``latest.json`` and ``collect-scaling.png`` (when matplotlib is installed: ``pip install -e '.[bench]'``).
The figures and how they are measured: docs/performance.md. These are measurements, not tests: a missed
target is reported, not raised (the exit status is 0 unless a benchmark itself broke).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Row, machine, table
from benchmarks.scenarios import LATENCY_MS, SMOKE, SMOKE_XL, XL, L, M

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = {
    "1": "collect wall time vs the server's limit",
    "2": "requests vs the minimum",
    "3": "ingest of an XL snapshot",
    "4": "raw retention cost",
    "5": "peak RSS of collect + ingest at XL",
    "6": "reading 100,000 assets over the API",
    "7": "pvesim headroom",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plot(scaling: dict[str, Any], path: Path, title: str) -> str | None:
    """The collect scaling table as a PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fig, axes = plt.subplots(1, len(scaling), figsize=(5.5 * len(scaling), 4.2), squeeze=False)
    for ax, (_name, data) in zip(axes[0], scaling.items(), strict=True):
        points = data["points"]
        xs = [p["max_parallel_nodes"] for p in points]
        ax.plot(xs, [p["wall_s"] for p in points], "o-", label="measured (median)")
        ax.plot(xs, [p["bound_s"] for p in points], "s--", label="lower bound (server limit)")
        ax.plot(xs, [p["bound_s"] * 1.25 for p in points], ":", color="grey", label="1.25 × bound")
        for p in points:
            ax.annotate(
                f"{p['ratio']:.2f}×",
                (p["max_parallel_nodes"], p["wall_s"]),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=8,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("max_parallel_nodes")
        ax.set_ylabel("collect wall time (s)")
        ax.set_title(data["description"].split(" (")[0], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def markdown(rows: list[Row], meta: dict[str, Any], details: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        "# Asset Ledger performance figures",
        "",
        f"Measured {meta['finished']} ({'smoke sizes' if meta['smoke'] else 'full sizes'}) in "
        f"{meta['duration_s']:.0f} s on {m['nproc']} × {m['cpu_model']}, {m['memory']} RAM, "
        f"Python {m['python']}; "
        f"load average at start {m['loadavg_at_start']}. How each figure is measured: docs/performance.md.",
        "",
        "Ratio: measured / bound for figure 1 (target ≤ 1.25), measured / target otherwise (≤ 1 meets it).",
        "",
        table(rows),
        "",
    ]
    notes = [f"- fig {r.figure}, {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    scaling = details.get("collect", {}).get("scaling", {})
    if scaling:
        lines += ["## Collect scaling", ""]
        lines += [
            "| scenario | max_parallel_nodes | measured (median) | runs | lower bound | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for name, data in scaling.items():
            for p in data["points"]:
                runs = ", ".join(f"{w:.2f}" for w in p["walls_s"])
                lines.append(
                    f"| {name} | {p['max_parallel_nodes']} | {p['wall_s']:.2f} s | {runs} | "
                    f"{p['bound_s']:.2f} s | "
                    f"{p['ratio']:.2f} |"
                )
        lines += [""]
        for data in scaling.values():
            lines.append(f"- {data['description']}")
            if "progress" in data:
                pr = data["progress"]
                lines.append(
                    f"  - progress events: {pr['events']}, phases {', '.join(pr['phases'])}; "
                    f"{pr['nodes_reported']} nodes reported; longest silence {pr['longest_silence_s']} s"
                )
        lines += ["", "![collect scaling](collect-scaling.png)", ""]
    if meta.get("errors"):
        lines += ["## Benchmarks that broke", "", *[f"- {e}" for e in meta["errors"]], ""]
    return "\n".join(lines)


def summary(rows: list[Row], meta: dict[str, Any]) -> str:
    """The summary block of docs/performance.md: when and where, the table, the notes."""
    m = meta["machine"]
    loads = ", ".join(str(r["machine"]["loadavg_at_start"][0]) for r in meta.get("runs", [meta]))
    notes = [f"- fig {r.figure}, {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(
        [
            f"Measured {meta['finished']} on {m['nproc']} × {m['cpu_model']}, {m['memory']} RAM, "
            f"Python {m['python']} (shared machine; 1-minute load average at the start of each part: "
            f"{loads}). Ratio: measured / bound for figure 1 (target ≤ 1.25), measured / target otherwise "
            "(≤ 1 meets it).",
            "",
            table(rows),
            "",
            *notes,
        ]
    )


def update_docs(path: Path, block: str) -> None:
    """Replace the text between ``<!-- summary -->`` and ``<!-- /summary -->`` in ``path``."""
    text = path.read_text("utf-8")
    head, start, rest = text.partition("<!-- summary -->\n")
    _, end, tail = rest.partition("<!-- /summary -->")
    if not start or not end:
        raise SystemExit(f"{path} has no <!-- summary --> ... <!-- /summary --> block")
    path.write_text(f"{head}{start}{block}\n{end}{tail}", "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes (CI)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated figures to run")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per point (medians)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for latest.md/.json/.png")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--agent-delay",
        type=float,
        default=None,
        help="seconds a dead agent holds its worker (default: 3, as PVE)",
    )
    parser.add_argument("--read-assets", type=int, default=100_000)
    parser.add_argument(
        "--skip-l-p1", action="store_true", help="leave out L at max_parallel_nodes=1 (~6 min)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other figures of an existing latest.json (replace only the figures run now)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="also write the summary into this file's <!-- summary --> block (make bench: "
        "docs/performance.md)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    started = time.perf_counter()
    meta: dict[str, Any] = {"smoke": args.smoke, "machine": machine(), "errors": []}
    rows: list[Row] = []
    details: dict[str, Any] = {}
    backends = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
    workdir = Path(tempfile.mkdtemp(prefix="al-bench-"))

    if args.smoke:
        collect_scenarios, parallels, repeat = [SMOKE], (1, 2), 1
        agent_delay = 0.03 if args.agent_delay is None else args.agent_delay
        latency_ms, xl, read_assets, samples = 2.0, SMOKE_XL, 300, 10
    else:
        collect_scenarios, parallels, repeat = [M, L], (1, 5, 16), args.repeat
        agent_delay, latency_ms, xl, read_assets, samples = (
            args.agent_delay,
            LATENCY_MS,
            XL,
            args.read_assets,
            120,
        )

    def guarded(name: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            meta["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())

    if only & {"1", "2", "7"}:

        def collect() -> None:
            from benchmarks import bench_collect

            log("figures 1, 2, 7: collect against pvesim")
            got, scaling = bench_collect.run(
                collect_scenarios,
                parallels,
                repeat=repeat,
                agent_delay=agent_delay,
                latency_ms=latency_ms,
                skip=(("L", 1),) if args.skip_l_p1 else (),
                log_progress=log,
            )
            rows.extend(r for r in got if r.figure in only)
            details["collect"] = {"scaling": scaling}
            delay = 3.0 if agent_delay is None else agent_delay
            why = plot(
                scaling,
                args.out / "collect-scaling.png",
                f"PVE collect vs the server's limit (pvesim 8.4, {latency_ms:g} ms latency, "
                f"3 workers/node, dead agent {delay:g} s)",
            )
            details["collect"]["plot"] = why or str(args.out / "collect-scaling.png")

        guarded("collect", collect)

    snapshot = workdir / "xl-1.json"
    if only & {"3", "4", "5", "6"}:

        def ingest() -> None:
            from benchmarks import bench_ingest

            log("figures 3, 4, 5: XL collect, ingest, retention, memory")
            got, info = bench_ingest.run(
                xl, repeat=repeat, backends=backends, workdir=workdir, log_progress=log
            )
            rows.extend(r for r in got if r.figure in only)
            details["ingest"] = info

        guarded("ingest", ingest)

    if "6" in only and snapshot.exists():

        def read() -> None:
            from benchmarks import bench_read

            log(f"figure 6: reading {read_assets} assets over HTTP")
            got, info = bench_read.run(
                snapshot, assets=read_assets, backends=backends, samples=samples, log_progress=log
            )
            rows.extend(got)
            details["read"] = info

        guarded("read", read)
    elif "6" in only:
        meta["errors"].append("read: no XL snapshot (the ingest benchmark did not produce one)")

    order = {str(i): i for i in range(1, 8)}
    rows.sort(key=lambda r: order.get(r.figure, 99))
    meta["duration_s"] = time.perf_counter() - started
    meta["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta["figures"] = {k: v for k, v in FIGURES.items() if k in only}
    missing = sorted(k for k in meta["figures"] if not any(r.figure == k for r in rows))
    if missing:
        meta["errors"].append(f"figures without a row: {', '.join(missing)}")

    previous = args.out / "latest.json"
    if args.merge and previous.exists():
        old = json.loads(previous.read_text("utf-8"))
        kept = [Row(**r) for r in old["rows"] if r["figure"] not in only]
        rows = sorted(kept + rows, key=lambda r: order.get(r.figure, 99))
        details = {**old.get("details", {}), **details}
        runs = [*old["meta"].get("runs", [old["meta"]]), {k: v for k, v in meta.items() if k != "runs"}]
        meta = {**meta, "runs": runs, "duration_s": sum(r.get("duration_s", 0.0) for r in runs)}
        meta["figures"] = {**old["meta"].get("figures", {}), **meta["figures"]}
        meta["errors"] = [e for r in runs for e in r.get("errors", [])]
    print(table(rows))
    for error in meta["errors"]:
        print(f"BROKEN: {error}")
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "rows": [r.as_dict() for r in rows], "details": details}
    (args.out / "latest.json").write_text(json.dumps(document, indent=1, default=str) + "\n", "utf-8")
    (args.out / "latest.md").write_text(markdown(rows, meta, details), "utf-8")
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'} in {meta['duration_s']:.0f} s")
    if args.docs is not None and not args.smoke:
        update_docs(args.docs, summary(rows, meta))
        log(f"updated the summary in {args.docs}")
    return 1 if meta["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
