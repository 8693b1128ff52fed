// sparse.h: a CSR matrix as scipy.sparse stores it, and a batch of its rows (the first layer's
// input when X is sparse).
//
// Contract: row i holds the values data[p] at the columns indices[p] for p in
// [indptr[i], indptr[i+1]); indices and indptr are both int32 or both int64 (`wide`), as scipy
// keeps them. Columns need not be sorted and may repeat (a repeated column adds up, as in
// scipy's own products). bindings.cpp checks the structure (indptr non-decreasing from 0,
// indices in [0, cols)) and the values (finite) before any call; the kernels clamp the offsets
// and skip out-of-range columns anyway, so a matrix another thread rewrites during a call gives
// wrong numbers, never an access out of bounds.
//
// Only the first layer sees the sparsity (sparse_kernels.cpp; network.cpp calls them where the
// dense path multiplies by X): its forward product X_b W_0 and its weight gradient X_b^T dZ_0.
// X is never densified, nor transposed: a batch is a list of row numbers of X.
#pragma once
#include <cstdint>

#include "common.h"

namespace mlpfast {

template <typename T>
struct Csr {
  const T* data = nullptr;
  const void* indices = nullptr;  // nnz entries, int32 or int64 (wide)
  const void* indptr = nullptr;   // rows + 1 entries, the same width
  bool wide = false;
  index_t rows = 0, cols = 0, nnz = 0;
};

// m rows of a Csr: row r of the batch is X's row rows[r], or first + r when rows is null.
template <typename T>
struct CsrRows {
  Csr<T> X;
  const std::int64_t* rows = nullptr;
  index_t first = 0, m = 0;
};

}  // namespace mlpfast
