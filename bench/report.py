"""Run the benchmark suites and write the report: a markdown table and a PNG chart.

    pip install ".[bench]"        # plus `pip install torch` to include PyTorch
    python bench/report.py        # writes bench/results/{report.md,chart.png,*.json}

Options: --quick (fewer rounds, for a smoke run), --skip-run (rebuild the report from the
JSON of an earlier run), -k EXPR (passed to pytest to select benchmarks), --merge (with -k:
the selected benchmarks replace their namesakes, and every result of the groups they belong
to, in the earlier run's JSON; the rest is kept: regenerates the part of the report a change
affects).

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

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SUITES = [
    "bench_gemm.py",
    "bench_core.py",
    "bench_step.py",
    "bench_estimators.py",
    "bench_fit.py",
    "bench_threads.py",
    "bench_latency.py",
    "bench_load.py",
]
ORDER = [
    "mlpfast",
    "numpy",
    "sklearn",
    "onnxruntime",
    "torch",
]  # every suite names its peers in extra_info


def run_suites(quick, select, json_path):
    RESULTS.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
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
    if select:  # memory.py measures the whole fit: not part of a selection
        return
    mem_cmd = [sys.executable, str(HERE / "memory.py"), "--json", str(RESULTS / "memory.json")]
    if quick:
        mem_cmd += ["--samples", "2000"]
    subprocess.run(mem_cmd, check=True)


def library_of(bench):
    return bench["extra_info"]["library"]


def order_of(library):
    return ORDER.index(library) if library in ORDER else len(ORDER)


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import mlpfast._core as core

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}; mlpfast kernels "
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
    'mlpfast GFLOP/s (numpy time / mlpfast time)'; the bf16 columns (matmul_precision=
    "bfloat16") against PyTorch's bf16 matmul instead."""
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
    cols = sorted({k[1] for k in cells}, key=lambda c: (c.endswith("bf16"), c))
    lines = [
        "**GEMM vs numpy.matmul** (OpenBLAS), default threads: mlpfast GFLOP/s "
        "(numpy's time / mlpfast's: > 1 means mlpfast is faster). The bf16 columns: "
        '`matmul_precision="bfloat16"` (float32 operands rounded while packing) against '
        "PyTorch's bf16 `torch.matmul` on operands already in bf16 (PyTorch's time / mlpfast's)",
        "",
        "| m x k x n | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for shape in shapes:
        row = []
        for col in cols:
            t = cells.get((shape, col), {})
            peer = "torch" if col.endswith("bf16") else "numpy"
            if "mlpfast" in t and peer in t:
                gf = flops[shape] / t["mlpfast"] / 1e9
                row.append(f"{gf:.{0 if gf >= 10 else 1}f} ({t[peer] / t['mlpfast']:.2f})")
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
        if len(groups[group]) == 1 and "interleaved" in groups[group][0]["extra_info"]:
            lines += interleaved_table(group, groups[group][0]["extra_info"])
            continue
        rows = sorted(
            groups[group],
            # threads: a count, or "default" (bench_load.py)
            key=lambda b: (order_of(library_of(b)), str(b["extra_info"].get("threads", 0))),
        )
        threads = all("threads" in b.get("extra_info", {}) for b in rows)
        if threads:  # thread scaling: against the same library on one thread
            ones = {library_of(b): b for b in rows if b["extra_info"]["threads"] == 1}
            header = "speed-up over 1 thread"
        else:
            mlpfast = next((b for b in rows if library_of(b) == "mlpfast"), None)
            header = "its time / mlpfast's"
        lines += [f"**{group}**", "", f"| | median | throughput | {header} |", "|---|---|---|---|"]
        for b in rows:
            value, unit = rate(b)
            label = library_of(b)
            if threads:
                label += f", {b['extra_info']['threads']} thread(s)"
            ratio = ""
            base = ones.get(library_of(b)) if threads else mlpfast
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


def interleaved_table(group, info):
    """A group timed in interleaved rounds by one benchmark (bench_core.py's bf16 epochs):
    per library the median over the rounds and the median of the rounds' own ratios."""
    libs = sorted(info["interleaved"], key=lambda lib: (order_of(lib), lib))
    rounds = max(r["rounds"] for r in info["interleaved"].values())
    lines = [
        f"**{group}** ({rounds} interleaved rounds, each timing every library once; the ratio: "
        "the median of the rounds' own ratios)",
        "",
        "| | median | throughput | its time / mlpfast's |",
        "|---|---|---|---|",
    ]
    for lib in libs:
        r = info["interleaved"][lib]
        thr = f"{info['samples'] / r['median']:,.0f} samples/s" if "samples" in info else ""
        ratio = "" if lib == "mlpfast" else f"{r['ratio']:.2f}"
        lines.append(f"| {lib} | {fmt_time(r['median'])} | {thr} | {ratio} |")
    return lines + [""]


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


def gemm_speedup_chart(benchmarks, ax):
    """numpy's time over mlpfast's per GEMM case at the MLP's shapes (the batch-1 ones are in
    the table), grouped by dtype and form, one colour per shape; > 1: mlpfast is faster."""
    medians = defaultdict(dict)  # (dtype, form, shape) -> library -> median
    for b in benchmarks:
        if b["extra_info"].get("flops", 0) >= 1e7:
            form, shape, dtype = b["group"].split()
            medians[(dtype, form, shape)][library_of(b)] = b["stats"]["median"]
    speedup = {  # (the bf16 groups' peer is PyTorch: the table has them)
        k: v["numpy"] / v["mlpfast"] for k, v in medians.items() if "numpy" in v and "mlpfast" in v
    }
    if not speedup:
        ax.set_axis_off()
        return
    size = lambda shape: [int(x) for x in shape.split("x")]  # noqa: E731
    shapes = sorted({k[2] for k in speedup}, key=lambda s: (np.prod(size(s)), size(s)))
    groups = sorted({k[:2] for k in speedup}, key=lambda g: (g[0], "NN TN NT".find(g[1])))
    width = 0.8 / len(shapes)
    from matplotlib import colormaps

    colours = colormaps["viridis"](np.linspace(0.1, 0.9, len(shapes)))
    for i, shape in enumerate(shapes):
        xs = [g + (i - (len(shapes) - 1) / 2) * width for g in range(len(groups))]
        ys = [speedup.get((*group, shape), np.nan) for group in groups]
        ax.bar(xs, np.subtract(ys, 1.0), width, bottom=1.0, color=colours[i], label=shape)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for g in range(1, len(groups)):
        if groups[g][0] != groups[g - 1][0]:  # between the dtypes
            ax.axvline(g - 0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xticks(range(len(groups)), [f"{form}\n{dtype}" for dtype, form in groups])
    ax.set(
        ylabel="numpy time / mlpfast time  (> 1: mlpfast faster)",
        title="GEMM at the MLP's shapes: mlpfast's speed over numpy.matmul's",
    )
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(
        title="m x k x n",
        fontsize=7,
        title_fontsize=7,
        ncol=len(shapes),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        frameon=False,
    )


def chart(benchmarks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    steps = defaultdict(dict)
    for b in benchmarks:
        info = b.get("extra_info", {})
        if b["group"].startswith("step ") and "batch_size" in info:
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

    gemm_speedup_chart(benchmarks, ax2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("-k", dest="select")
    parser.add_argument("--merge", action="store_true")
    args = parser.parse_args(argv)
    if args.merge and not args.select:
        parser.error("--merge needs -k EXPR (the benchmarks to run again)")
    results = RESULTS / "benchmarks.json"
    if not args.skip_run:
        fresh = RESULTS / "benchmarks.new.json" if args.merge else results
        run_suites(args.quick, args.select, fresh)
        data = json.loads(fresh.read_text())
        data["report_machine"] = machine()  # kept with the results: --skip-run reports it
        for bench in data["benchmarks"]:  # every round's time (55 MB for the GEMM suite alone):
            bench["stats"].pop("data", None)  # the report reads the summary statistics only
        if args.merge:
            fresh.unlink()
            old = json.loads(results.read_text())
            # a group is compared within one run: every old result of a group measured again
            # goes, whatever its name (a test may have changed its parameters)
            names = {b["fullname"] for b in data["benchmarks"]}
            groups = {b.get("group") for b in data["benchmarks"]} - {None}
            kept = [
                b
                for b in old["benchmarks"]
                if b["fullname"] not in names and b.get("group") not in groups
            ]
            old["benchmarks"] = kept + data["benchmarks"]
            old.setdefault("merged", []).append(
                {"datetime": data.get("datetime"), "select": args.select}
            )
            data = old
        results.write_text(json.dumps(data, indent=1))
    data = json.loads(results.read_text())
    mem_path = RESULTS / "memory.json"
    mem = json.loads(mem_path.read_text()) if mem_path.exists() else None
    lines = [
        "# mlpfast benchmark report",
        "",
        f"Machine: {data.get('report_machine') or machine()}. "
        f"Measured {data.get('datetime', '')[:19]}"
        + "".join(
            f"; `-k {m['select']}` measured again {(m.get('datetime') or '')[:19]}"
            for m in data.get("merged", [])
        )
        + ".",
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
