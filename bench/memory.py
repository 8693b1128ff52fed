"""Peak resident memory of one fit, each library in its own process.

    python bench/memory.py [--samples N] [--json PATH]

For each library a fresh Python process builds the data, resets the kernel's peak-RSS counter
(/proc/self/clear_refs), runs one epoch of the lecture's example (784-500-500-10, ReLU, Adam,
batch 100, float32) and reports the peak resident memory during the fit, and how much it rose
above the process's memory before the fit. The floor to compare with is what any implementation
must hold: X plus the parameters and Adam's two moment buffers.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

LIBRARIES = ["mlpfast", "numpy", "sklearn", "torch"]

CHILD = r"""
import json, sys, warnings
import numpy as np
sys.path.insert(0, {bench!r})
from _peers import LECTURE_UNITS, init_params, one_hot, synthetic_classification
library, n = {library!r}, {samples}

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

X, y = synthetic_classification(n, dtype=np.float32, seed=4)
if library == "mlpfast":
    import mlpfast
    est = mlpfast.MLPClassifier(LECTURE_UNITS[1:-1], batch_size=100, max_iter=1, random_state=0)
    fit = lambda: est.fit(X, y)
elif library == "sklearn":
    from sklearn.neural_network import MLPClassifier
    est = MLPClassifier(LECTURE_UNITS[1:-1], batch_size=100, max_iter=1, random_state=0)
    fit = lambda: est.fit(X, y)
elif library == "numpy":
    from mlpfast import reference
    Y = one_hot(y)
    def fit():
        params = init_params(LECTURE_UNITS, np.float32)
        state = np.zeros(2 * params.size, np.float32)
        reference.train_epoch(params, state, LECTURE_UNITS, "relu", "softmax", X, Y, None,
                              np.random.RandomState(0).permutation(n), 100, solver="adam")
else:
    from _peers import TorchLoop
    import torch
    def fit():
        loop = TorchLoop()
        xt, yt = loop.tensors(X, y)
        loop.epoch(xt, yt, 100, torch.randperm(n))
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM (peak RSS) to the current RSS
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit()
print(json.dumps(dict(library=library, rss_before=before, peak=status("VmHWM:"))))
"""


def measure(library, samples):
    code = CHILD.format(bench=str(Path(__file__).parent), library=library, samples=samples)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        if "No module named 'torch'" in proc.stderr:
            return None
        raise RuntimeError(f"{library}: memory run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def floor_bytes(samples):
    units = (784, 500, 500, 10)
    n_params = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    return 4 * (samples * units[0] + 3 * n_params)  # X + params + Adam's m and v, float32


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [r for r in (measure(lib, args.samples) for lib in LIBRARIES) if r is not None]
    result = dict(samples=args.samples, floor=floor_bytes(args.samples), runs=rows)
    for r in rows:
        print(
            f"{r['library']:>8}: peak {r['peak'] / 2**20:7.1f} MiB, "
            f"rise during fit {(r['peak'] - r['rss_before']) / 2**20:7.1f} MiB "
            f"(X + params + Adam state = {result['floor'] / 2**20:.1f} MiB)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
