import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for _peers


@pytest.fixture(autouse=True)
def _settle_threads():
    """On 2 cores, another library's spinning OpenMP/OpenBLAS threads skew the next timing:
    give them a moment to go idle before each benchmark (docs/kernels.md)."""
    import time

    time.sleep(0.2)
    yield


import threadpoolctl  # noqa: E402

_results = {}


_ratios = {}  # group -> {library: median}, for benchmarks that name a peer in "ratio_vs"


def pytest_runtest_teardown(item):
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    stats = getattr(fixture, "stats", None)
    if fixture is not None and stats is not None and "ratio_vs" in fixture.extra_info:
        r = _ratios.setdefault(fixture.group, {"peer": fixture.extra_info["ratio_vs"]})
        r[fixture.extra_info["library"]] = stats.stats.median
    if fixture is None or stats is None or "flops" not in fixture.extra_info:
        return
    _results.setdefault(fixture.group, {})[fixture.extra_info["library"]] = stats.stats.median
    _results[fixture.group]["flops"] = fixture.extra_info["flops"]


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if _ratios:
        tr.section("side by side: median seconds and peer/mlpfast (> 1: mlpfast faster)")
        for group, r in _ratios.items():
            peer = r["peer"]
            for lib, median in r.items():
                if lib not in ("peer", peer) and peer in r:
                    tr.write_line(
                        f"{group:66s} {peer} {r[peer]:7.3f}  {lib} {median:7.3f}"
                        f"  {r[peer] / median:5.2f}x"
                    )
    if not _results:
        return
    tr.section("GEMM: GFLOP/s (median) and ratio mlpfast/numpy (> 1: mlpfast faster)")
    for info in threadpoolctl.threadpool_info():
        tr.write_line(
            f"  {info.get('internal_api')} {info.get('version')} "
            f"{info.get('architecture', '')} threads={info.get('num_threads')}"
        )
    tr.write_line(f"{'case':34s} {'numpy':>9s} {'mlpfast':>9s} {'ratio':>7s}")
    for group, r in _results.items():
        if "numpy" not in r or "mlpfast" not in r:
            continue
        gflops = {lib: r["flops"] / r[lib] / 1e9 for lib in ("numpy", "mlpfast")}
        tr.write_line(
            f"{group:34s} {gflops['numpy']:9.2f} {gflops['mlpfast']:9.2f} "
            f"{r['numpy'] / r['mlpfast']:6.2f}x"
        )
