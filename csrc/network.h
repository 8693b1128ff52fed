// network.h: forward, back-propagation and one training epoch over the layer stack.
//
// Contract: mlpfast.reference.forward / loss_grad / train_epoch, on raw pointers (bindings.cpp
// has checked every shape, dtype and value before calling; nothing here throws on bad input).
// Parameters and optimizer state are flat buffers in scikit-learn's packing order:
//   params = [W1, ..., WL, b1, ..., bL, s1, ..., s(L-1)]  (slopes only for prelu)
//   optimizer state = kStateBuffers buffers of n_params (sgd: velocity; adam: [m, v])
// with W_l of shape (units[l-1], units[l]) row-major.
//
// Reference: Rumelhart, Hinton & Williams, "Learning representations by back-propagating
// errors", Nature 1986; Goodfellow, Bengio & Courville, Deep Learning (2016), ch. 6.5.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "sparse.h"

namespace mlpfast {

// A network's shape: units[0..n_layers], n_layers = number of weight layers (>= 1).
struct NetSpec {
  const index_t* units;
  int n_layers;
  Activation act;
  Output out;
};

// Ctrl-C: forward() and loss_grad() call the hook from the calling thread between pieces of
// their work (outside any parallel region, at most every ~50 ms, and never in a call shorter
// than that). The hook may throw to abandon the call: its outputs are then unspecified, its
// inputs untouched. The bindings install one that checks Python's signals; none by default.
using InterruptHook = void (*)();
void set_interrupt_hook(InterruptHook hook);

// Length of the flat parameter buffer (with PReLU slopes when act == prelu).
index_t n_params(const NetSpec& net);
// Length of the weights' part of it (the parameters the L2 penalty applies to).
index_t n_weights(const NetSpec& net);

// A read-only strided matrix: element (i, j) at data[i * rs + j * cs].
template <typename T>
struct Strided {
  const T* data;
  index_t rows, cols, rs, cs;
};

// out (X.rows x units[L], row-major) = the network's output for the rows of X. Works in chunks
// of rows, so the workspace stays bounded whatever X.rows is.
template <typename T>
void forward(const NetSpec& net, const T* params, Strided<T> X, T* out);

// Loss on the batch (X, Y, sample weights sw of stride sw_stride, or null) and its gradient
// (grad: n_params entries), L2 penalty alpha included. X.rows >= 1.
template <typename T>
double loss_grad(const NetSpec& net, const T* params, Strided<T> X, Strided<T> Y, const T* sw,
                 index_t sw_stride, double alpha, T* grad);

// One epoch of mini-batch training over batches of `order` (n_order >= 1, entries in
// [0, X.rows)), updating params and opt_state in place. Returns the epoch loss (the batch losses
// weighted by batch length, over n_order); opts.t is advanced by the solver's schedule (Adam's
// steps). TrainOptions: optimizers.h.
template <typename T>
double train_epoch(const NetSpec& net, T* params, T* opt_state, Strided<T> X, Strided<T> Y,
                   const T* sw, index_t sw_stride, const std::int64_t* order, index_t n_order,
                   index_t batch_size, TrainOptions& opts);

// The same three on a CSR X (sparse.h; bindings.cpp has checked its structure and values): only
// the first layer's products differ (sparse_kernels.cpp); X is neither copied nor densified.
template <typename T>
void forward(const NetSpec& net, const T* params, const Csr<T>& X, T* out);
template <typename T>
double loss_grad(const NetSpec& net, const T* params, const Csr<T>& X, Strided<T> Y, const T* sw,
                 index_t sw_stride, double alpha, T* grad);
template <typename T>
double train_epoch(const NetSpec& net, T* params, T* opt_state, const Csr<T>& X, Strided<T> Y,
                   const T* sw, index_t sw_stride, const std::int64_t* order, index_t n_order,
                   index_t batch_size, TrainOptions& opts);

}  // namespace mlpfast
