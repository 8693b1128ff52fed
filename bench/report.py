"""Run the benchmark suites and write the report: a markdown table and a PNG chart.

    pip install ".[bench]"        # plus `pip install torch` to include PyTorch
    python bench/report.py        # writes bench/results/{report.md,chart.png,*.json}

Options: --quick (fewer rounds, for a smoke run), --skip-run (rebuild the report from the
JSON of an earlier run), -k EXPR (passed to pytest to select benchmarks).

Every group of the suites holds mlpfast and its peers measured side by side in one run; the
report quotes medians and the ratio of each peer's median to mlpfast's (> 1: mlpfast is faster).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SUITES = [
    "bench_gemm.py",
    "bench_core.py",
    "bench_step.py",
    "bench_estimators.py",
    "bench_fit.py",
    "bench_threads.py",
]
ORDER = ["mlpfast", "numpy", "sklearn", "torch"]
ALIASES = {"core": "mlpfast", "reference": "numpy"}  # bench_core names the engines


def run_suites(quick, select):
    RESULTS.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={RESULTS / 'benchmarks.json'}",
        "--benchmark-sort=name",
        "--benchmark-columns=median,iqr,rounds",
    ]
    cmd += [str(HERE / s) for s in SUITES if (HERE / s).exists()]
    if quick:
        cmd += ["--benchmark-max-time=0.2", "--benchmark-min-rounds=2"]
    if select:
        cmd += ["-k", select]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent)
    mem_cmd = [sys.executable, str(HERE / "memory.py"), "--json", str(RESULTS / "memory.json")]
    if quick:
        mem_cmd += ["--samples", "2000"]
    subprocess.run(mem_cmd, check=True)


def library_of(bench):
    info, params = bench.get("extra_info", {}), bench.get("params") or {}
    for key in ("library", "impl", "engine", "backend"):
        for source in (info, params):
            if key in source:
                name = str(source[key])
                return ALIASES.get(name, name)
    return bench["name"]


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    import mlpfast._core as core

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, numpy {numpy.__version__}; mlpfast kernels "
        f"{core.isa()}"
    )


def fmt_time(s):
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6)):
        if s * scale >= 1:
            return f"{s * scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def rate(bench):
    """(value, unit) of throughput: GFLOP/s for products, samples/s for training."""
    info, med = bench.get("extra_info", {}), bench["stats"]["median"]
    if "flops" in info:
        return info["flops"] / med / 1e9, "GFLOP/s"
    if "samples" in info:
        return info["samples"] / med, "samples/s"
    return None, ""


def gemm_table(benchmarks):
    """One matrix for the GEMM suite: rows (m, k, n), columns form x dtype, cells
    'mlpfast GFLOP/s (numpy time / mlpfast time)'."""
    cells = defaultdict(dict)  # (shape, form dtype) -> library -> median
    flops = {}
    for b in benchmarks:
        if "flops" not in b.get("extra_info", {}):
            continue
        form, shape, dtype = b["group"].split()
        cells[(shape, f"{form} {dtype.replace('float', 'f')}")][library_of(b)] = b["stats"][
            "median"
        ]
        flops[shape] = b["extra_info"]["flops"]
    if not cells:
        return []
    shapes = sorted({k[0] for k in cells}, key=lambda s: [int(x) for x in s.split("x")])
    cols = sorted({k[1] for k in cells})
    lines = [
        "**GEMM vs numpy.matmul** (OpenBLAS), default threads: mlpfast GFLOP/s "
        "(numpy's time / mlpfast's: > 1 means mlpfast is faster)",
        "",
        "| m x k x n | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for shape in shapes:
        row = []
        for col in cols:
            t = cells.get((shape, col), {})
            if "mlpfast" in t and "numpy" in t:
                gf = flops[shape] / t["mlpfast"] / 1e9
                row.append(f"{gf:.{0 if gf >= 10 else 1}f} ({t['numpy'] / t['mlpfast']:.2f})")
            else:
                row.append("")
        lines.append(f"| {shape} | " + " | ".join(row) + " |")
    return lines + [""]


def tables(benchmarks):
    groups = defaultdict(list)
    for b in benchmarks:
        if "flops" not in b.get("extra_info", {}):  # the GEMM has its own matrix
            groups[b.get("group") or b["name"]].append(b)
    lines = []
    for group in sorted(groups):
        rows = sorted(
            groups[group],
            key=lambda b: (
                ORDER.index(library_of(b)) if library_of(b) in ORDER else 9,
                b.get("extra_info", {}).get("threads", 0),
            ),
        )
        threads = all("threads" in b.get("extra_info", {}) for b in rows)
        if threads:  # thread scaling: against the same library on one thread
            base = next((b for b in rows if b["extra_info"]["threads"] == 1), None)
            header = "speed-up over 1 thread"
        else:
            base = next((b for b in rows if library_of(b) == "mlpfast"), None)
            header = "its time / mlpfast's"
        lines += [f"**{group}**", "", f"| | median | throughput | {header} |", "|---|---|---|---|"]
        for b in rows:
            value, unit = rate(b)
            label = library_of(b)
            if threads:
                label += f", {b['extra_info']['threads']} thread(s)"
            ratio = ""
            if base is not None and b is not base:
                ratio = (
                    f"{base['stats']['median'] / b['stats']['median']:.2f}"
                    if threads
                    else f"{b['stats']['median'] / base['stats']['median']:.2f}"
                )
            thr = f"{value:,.0f} {unit}" if value else ""
            lines.append(f"| {label} | {fmt_time(b['stats']['median'])} | {thr} | {ratio} |")
        lines.append("")
    return lines


def memory_table(mem):
    if not mem:
        return []
    lines = [
        f"**Peak memory of one fit epoch ({mem['samples']} samples, each library in its own "
        f"process).** What any implementation must hold: X + parameters + Adam state = "
        f"{mem['floor'] / 2**20:.1f} MiB; 'rise' is what the fit added to a process that "
        f"already held X.",
        "",
        "| | peak RSS | rise during fit |",
        "|---|---|---|",
    ]
    for r in mem["runs"]:
        rise = r["peak"] - r["rss_before"]
        lines.append(f"| {r['library']} | {r['peak'] / 2**20:.0f} MiB | {rise / 2**20:.1f} MiB |")
    return lines + [""]


def chart(benchmarks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    steps = defaultdict(dict)
    for b in benchmarks:
        info = b.get("extra_info", {})
        if b.get("group", "").startswith("step ") and "batch_size" in info:
            steps[library_of(b)][info["batch_size"]] = info["samples"] / b["stats"]["median"]
    for lib in [name for name in ORDER if name in steps]:
        xs = sorted(steps[lib])
        ax1.plot(xs, [steps[lib][x] for x in xs], marker="o", label=lib)
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="samples / s",
        title="Training step, 784-500-500-10 ReLU Adam, float32",
    )
    ax1.grid(True, which="both", alpha=0.3)
    if steps:
        ax1.legend()

    gemm = defaultdict(dict)
    for b in benchmarks:
        info = b.get("extra_info", {})
        if info.get("flops", 0) >= 1e7:  # the MLP shapes; the batch-1 ones are in the table
            key = b.get("group", b["name"])
            gemm[key][library_of(b)] = info["flops"] / b["stats"]["median"] / 1e9
    keys = sorted(gemm)
    libs = sorted(
        {lib for v in gemm.values() for lib in v},
        key=lambda lib: ORDER.index(lib) if lib in ORDER else 9,
    )
    width = 0.8 / max(1, len(libs))
    for i, lib in enumerate(libs):
        ax2.bar(
            [k + i * width for k in range(len(keys))],
            [gemm[k].get(lib, 0) for k in keys],
            width,
            label=lib,
        )
    ax2.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], keys, rotation=90, fontsize=6)
    ax2.set(ylabel="GFLOP/s", title="GEMM at the MLP's shapes")
    if libs:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("-k", dest="select")
    args = parser.parse_args(argv)
    if not args.skip_run:
        run_suites(args.quick, args.select)
    data = json.loads((RESULTS / "benchmarks.json").read_text())
    mem_path = RESULTS / "memory.json"
    mem = json.loads(mem_path.read_text()) if mem_path.exists() else None
    lines = [
        "# mlpfast benchmark report",
        "",
        f"Machine: {machine()}. Measured {data.get('datetime', '')[:19]}.",
        "",
        "Medians; each group measured side by side in one run. A ratio above 1 means "
        "mlpfast is faster.",
        "",
        "![chart](chart.png)",
        "",
    ]
    lines += gemm_table(data["benchmarks"]) + tables(data["benchmarks"]) + memory_table(mem)
    (RESULTS / "report.md").write_text("\n".join(lines))
    chart(data["benchmarks"], RESULTS / "chart.png")
    print(f"wrote {RESULTS / 'report.md'} and {RESULTS / 'chart.png'}")


if __name__ == "__main__":
    main()
