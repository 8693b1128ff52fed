import numpy as np

import mlpfast._core as core


def test_gemm_matches_numpy_small():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(core.gemm(a, b), a @ b, rtol=1e-12)
