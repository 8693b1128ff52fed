"""Array conversion in the bindings: dtypes are compared by equality, not identity, and a
non-native byte order is refused. (gemm's results, shapes and bad input: tests/test_gemm.py.)"""

import pickle

import numpy as np
import pytest

import mlpfast._core as core
from mlpfast import reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unpickled_arrays_are_accepted(dtype):
    # An unpickled array's dtype is equal to, but not the same object as, numpy's own one.
    rng = np.random.default_rng(1)
    units = [3, 4, 2]
    params = pickle.loads(
        pickle.dumps(rng.standard_normal(reference.n_params(units, "relu")).astype(dtype))
    )
    X = pickle.loads(pickle.dumps(rng.standard_normal((5, 3)).astype(dtype)))
    assert X.dtype is not np.dtype(dtype)
    np.testing.assert_allclose(
        core.forward(params, units, "relu", "softmax", X),
        reference.forward(params, units, "relu", "softmax", X),
        rtol=1e-5,
    )
    np.testing.assert_allclose(core.gemm(X, X.T.copy()), X @ X.T, rtol=1e-5)


def test_non_native_byte_order_is_a_type_error():
    a = np.ones((2, 2), dtype=">f8")
    with pytest.raises(TypeError, match="float32 or float64"):
        core.gemm(a, a)
