import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for _peers


@pytest.fixture(autouse=True)
def _settle_threads():
    """On 2 cores, another library's spinning OpenMP/OpenBLAS threads skew the next timing:
    give them a moment to go idle before each benchmark (KERNEL-NOTES.md)."""
    import time

    time.sleep(0.2)
    yield
