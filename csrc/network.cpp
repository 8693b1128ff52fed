// network.cpp: forward, back-propagation and one training epoch over the layer stack.
//
// Contract: network.h (mlpfast.reference.forward / loss_grad / train_epoch). Compiled once; the
// arithmetic is in the per-ISA kernels reached through kernels<T>():
//   forward    Z_l = A_(l-1) W_l + b_l             gemm NN, bias and activation fused
//              A_l = g(Z_l)                        (prelu: separate pass, Z kept for backward)
//   output     dZ_L = (out(Z_L) - Y) * sw, loss    output_loss_grad (losses.h), one pass
//   backward   dW_l = A_(l-1)^T dZ_l / m           gemm TN, alpha = 1 / m
//              db_l = sum_rows(dZ_l) / m           column_sum
//              dA_(l-1) = dZ_l W_l^T               gemm NT (skipped for the input layer)
//              dZ_(l-1) = dA_(l-1) * g'(A_(l-1))   act_backward / prelu_backward, in place
//   update     one fused optimizer pass over the flat buffer (the solver's update in
//              optimizers.h, through OptimizerKernels::step), which also adds
//              the L2 term alpha W / m to the weights' gradient and returns ||W||^2 for the
//              batch's loss, so the penalty costs no pass of its own.
//   batches of 1 or 2 rows (kOuterMaxRows): no dW GEMM; each layer's weights are stepped as
//              soon as dA_(l-1) has been taken from them, with dW formed on the fly in
//              L1-sized chunks (OptimizerKernels::step_outer); then biases and slopes.
// m is the batch's row count, or the sum of its sample weights.
//
// Memory: one workspace per call, carved into aligned blocks before the first batch; nothing is
// allocated per batch. forward() works in chunks of rows so its workspace stays bounded.
// Overlap: in train_epoch a helper thread gathers the next batch's X rows while the calling
// thread runs the output layer's (one-thread) products and the loss (train_epoch_with).
//
// Each call fetches the kernel set once (kernels<T>()) and passes it down, so that set_isa() in
// another thread cannot mix two levels within one call. forward() and loss_grad() poll the
// interrupt hook (network.h) between pieces of work: their long GEMMs are cut into pieces of
// rows (gemm_pieces), which leaves every element's arithmetic as it was.
//
// Reference: Rumelhart, Hinton & Williams, Nature 1986; Goodfellow, Bengio & Courville, Deep
// Learning (2016), algorithms 6.3 and 6.4; scikit-learn's BaseMultilayerPerceptron._backprop.
#include "network.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlpfast {
namespace {

// Offsets of W_l, b_l and the PReLU slopes s_l in the flat buffer (0-based layer l maps
// units[l] -> units[l+1]; slopes exist for the hidden layers l < L-1).
struct Layout {
  std::vector<index_t> w, b, s;
  index_t n_weights = 0, n_params = 0;
  index_t widest_hidden = 0, widest = 0;  // over units[1..L-1], and units[1..L]

  explicit Layout(const NetSpec& net) {
    const int L = net.n_layers;
    index_t off = 0;
    for (int l = 0; l < L; ++l) {
      w.push_back(off);
      off += net.units[l] * net.units[l + 1];
    }
    n_weights = off;
    for (int l = 0; l < L; ++l) {
      b.push_back(off);
      off += net.units[l + 1];
    }
    if (net.act == Activation::prelu) {
      for (int l = 0; l + 1 < L; ++l) {
        s.push_back(off);
        off += net.units[l + 1];
      }
    }
    n_params = off;
    for (int l = 1; l <= L; ++l) {
      if (l < L && net.units[l] > widest_hidden) widest_hidden = net.units[l];
      if (net.units[l] > widest) widest = net.units[l];
    }
  }
};

// One allocation, handed out in 64-byte aligned blocks (the GEMM likes aligned rows). Blocks are
// rows x cols elements; the sizes are summed with overflow checks (a zero-stride X can have
// any number of rows), and allocate() throws std::length_error (ValueError in Python) when
// the total does not fit, before anything is allocated.
class Arena {
 public:
  template <typename T>
  void reserve(index_t rows, index_t cols = 1) {
    const index_t item = index_t(sizeof(T)), room = kMaxBytes - bytes_;
    if (rows < 0 || cols < 0 || (cols > 0 && rows > room / item / cols)) {
      too_large_ = true;
      return;
    }
    bytes_ += round_up(rows * cols * item);
    if (bytes_ > kMaxBytes) too_large_ = true;
  }
  void allocate() {
    if (too_large_)
      throw std::length_error(
          "the workspace of this call would exceed 2**60 bytes (X has too "
          "many rows for this network)");
    storage_.resize(size_t(bytes_ + kAlign));
    const auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
    next_ = reinterpret_cast<char*>((base + kAlign - 1) / kAlign * kAlign);
  }
  template <typename T>
  T* take(index_t rows, index_t cols = 1) {  // after allocate(): the sizes are known to fit
    T* p = reinterpret_cast<T*>(next_);
    next_ += round_up(rows * cols * index_t(sizeof(T)));
    return p;
  }

 private:
  static constexpr index_t kAlign = 64;
  static constexpr index_t kMaxBytes = index_t(1) << 60;  // far beyond any memory; no overflow
  static index_t round_up(index_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
  std::vector<char> storage_;
  index_t bytes_ = 0;
  bool too_large_ = false;
  char* next_ = nullptr;
};

// The interrupt hook (network.h), polled at most every kPollInterval of a call's work.
std::atomic<InterruptHook> g_interrupt_hook{nullptr};
constexpr std::chrono::milliseconds kPollInterval{50};

class Poll {
 public:
  Poll() : hook_(g_interrupt_hook.load(std::memory_order_acquire)) {
    if (hook_) next_ = std::chrono::steady_clock::now() + kPollInterval;
  }
  // Calls the hook (which may throw) if kPollInterval has passed since the last time.
  void check() {
    if (!hook_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return;
    hook_();
    next_ = std::chrono::steady_clock::now() + kPollInterval;
  }

 private:
  InterruptHook hook_;
  std::chrono::steady_clock::time_point next_{};
};

// main() on the calling thread while side() runs on a helper, when the thread policy gives a
// team (threads.h; threads past the second only wait at the region's end); else side(), then
// main(). Every parallel region inside either runs on its thread alone (threads.h: inside
// someone else's region), so main() should hold products that run on one thread anyway. An
// exception from either is rethrown once both have ended (main()'s first).
template <typename Main, typename Side>
void side_by_side(const Main& main, const Side& side) {
#ifdef _OPENMP
  const int team = region_threads();
  if (team > 1) {
    std::exception_ptr error[2];
    RegionTimer timer(team);  // when the helpers arrive (threads.h: the load adaptation)
#pragma omp parallel num_threads(team)
    {
      timer.arrive();
      const int t = omp_get_thread_num();
      try {
        if (t == 0)
          main();
        else if (t == 1)
          side();
      } catch (...) {
        error[t] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : error)
      if (e) std::rethrow_exception(e);
    return;
  }
#endif
  side();
  main();
}

// k.gemm in pieces of C's rows, polling between them, when `poll` is given and the product is
// long: each piece is about kPieceFlops (at least kPieceRows rows) and starts at a multiple of
// kPieceRows. K is never split. Bitwise the same as one call: the GEMM's arithmetic per element
// depends on K and on its small-matrix path, taken for m <= 4 rows only; its packed path already
// cuts M at any multiple of MR (tasks, row super-blocks) without changing an element's operations,
// and 48 is a multiple of every level's MR (8, 6, 4), so the pieces hold the same tiles.
constexpr index_t kPieceRows = 48;
constexpr double kPieceFlops = double(index_t(1) << 31);  // ~40 ms on one core

template <typename T>
void gemm_pieces(const KernelSet<T>& k, Poll* poll, bool trans_a, bool trans_b, index_t m,
                 index_t n, index_t kk, T alpha, const T* a, index_t lda, const T* b, index_t ldb,
                 T beta, T* c, index_t ldc, const T* bias, Activation act) {
  index_t rows = m;
  const double row_flops = 2.0 * double(n) * double(kk);
  if (poll && row_flops > 0.0 && double(m) * row_flops > 2.0 * kPieceFlops) {
    // dW (trans_a) pieces re-read all of dZ: at least 8 x kPieceRows rows, or the memory
    // traffic costs ~25% of a large full-batch loss_grad
    const index_t least = trans_a ? 8 * kPieceRows : kPieceRows;
    rows = index_t(kPieceFlops / row_flops) / kPieceRows * kPieceRows;
    if (rows < least) rows = least;
  }
  for (index_t r0 = 0; r0 < m;) {
    const index_t r1 = m - r0 < 2 * rows ? m : r0 + rows;  // the last piece takes the rest
    k.gemm(trans_a, trans_b, r1 - r0, n, kk, alpha, trans_a ? a + r0 : a + r0 * lda, lda, b, ldb,
           beta, c + r0 * ldc, ldc, bias, act);
    r0 = r1;
    if (poll) poll->check();
  }
}

// The per-layer buffers of a batch of up to `rows` rows. For training every hidden layer keeps
// its A (and Z for prelu) for backward; for prediction two A buffers and one Z are reused.
template <typename T>
struct BatchBuffers {
  std::vector<T*> a, z;  // hidden layers 0..L-2
  T* z_out = nullptr;    // rows x units[L]
  T* d[2] = {nullptr, nullptr};

  void reserve(Arena& arena, const NetSpec& net, const Layout& lay, index_t rows, bool keep) {
    plan(arena, net, lay, rows, keep, false);
  }
  void take(Arena& arena, const NetSpec& net, const Layout& lay, index_t rows, bool keep) {
    plan(arena, net, lay, rows, keep, true);
  }

 private:
  void plan(Arena& arena, const NetSpec& net, const Layout& lay, index_t rows, bool keep,
            bool take) {
    const int L = net.n_layers;
    const bool prelu = net.act == Activation::prelu;
    auto block = [&](index_t r, index_t c) -> T* {
      if (take) return arena.take<T>(r, c);
      arena.reserve<T>(r, c);
      return nullptr;
    };
    a.assign(size_t(L > 1 ? L - 1 : 0), nullptr);
    z.assign(a.size(), nullptr);
    if (keep) {
      for (int h = 0; h + 1 < L; ++h) {
        a[h] = block(rows, net.units[h + 1]);
        if (prelu) z[h] = block(rows, net.units[h + 1]);
      }
      z_out = block(rows, net.units[L]);
      d[0] = block(rows, lay.widest);
      d[1] = block(rows, lay.widest);
    } else if (L > 1) {  // ping-pong: layer h reads a[h-1] and writes a[h]
      T* ping = block(rows, lay.widest_hidden);
      T* pong = block(rows, lay.widest_hidden);
      T* zbuf = prelu ? block(rows, lay.widest_hidden) : nullptr;
      for (int h = 0; h + 1 < L; ++h) {
        a[h] = (h % 2 == 0) ? ping : pong;
        z[h] = zbuf;
      }
    }
  }
};

// The first layer's input for one batch of m rows: dense rows x (leading dimension ldx), or the
// rows of a CSR matrix (csr, sparse.h; x null). With csr, `clear` names the rows of dW_0 the
// previous batch wrote (null: none known, so all), which csr_gemm_tn zeroes first.
template <typename T>
struct Input {
  const T* x = nullptr;
  index_t ldx = 0;
  const CsrRows<T>* csr = nullptr;
  const CsrRows<T>* clear = nullptr;
};

// Z_l = A_(l-1) W_l + b_l and A_l = g(Z_l) for every layer; the output layer's Z goes to z_out
// (leading dimension ldo) without its activation (the loss or output_forward applies it).
// k: the call's kernel set; poll: null, or the call's interrupt poll.
// Layers [from, to) only (to < 0: to the last), e.g. all but the output layer and then that one.
template <typename T>
void forward_batch(const KernelSet<T>& k, Poll* poll, const NetSpec& net, const Layout& lay,
                   const T* params, index_t m, const Input<T>& x, const BatchBuffers<T>& buf,
                   T* z_out, index_t ldo, int from = 0, int to = -1) {
  const int L = net.n_layers;
  const T* in = from == 0 ? x.x : buf.a[from - 1];
  index_t ld_in = from == 0 ? x.ldx : net.units[from];
  for (int l = from; l < (to < 0 ? L : to); ++l) {
    const index_t fan_in = net.units[l], fan_out = net.units[l + 1];
    const T* W = params + lay.w[l];
    const T* b = params + lay.b[l];
    // C = act(A_(l-1) W_l + b_l); a sparse X's first layer: sparse x dense (sparse_kernels.cpp)
    auto product = [&](T* c, index_t ldc, Activation act) {
      if (l == 0 && x.csr)
        k.csr_gemm(*x.csr, fan_out, W, b, act, c, ldc);
      else
        gemm_pieces<T>(k, poll, false, false, m, fan_out, fan_in, T(1), in, ld_in, W, fan_out, T(0),
                       c, ldc, b, act);
    };
    if (l == L - 1) {
      product(z_out, ldo, Activation::identity);
    } else if (net.act == Activation::prelu) {
      product(buf.z[l], fan_out, Activation::identity);
      k.prelu_forward(m, fan_out, buf.z[l], fan_out, params + lay.s[l], buf.a[l], fan_out);
    } else {
      product(buf.a[l], fan_out, net.act);
    }
    if (l < L - 1) {
      in = buf.a[l];
      ld_in = fan_out;
    }
  }
}

// The products of layer l's back-propagation, from dZ_l (dz): dW_l = A_(l-1)^T dZ_l / m_eff into
// grad (not with update_weights), db_l, and dA_(l-1) = dZ_l W_l^T into da when l > 0.
template <typename T>
void backward_products(const KernelSet<T>& k, Poll* poll, const NetSpec& net, const Layout& lay,
                       const T* params, index_t m, const Input<T>& x, const BatchBuffers<T>& buf,
                       T m_eff, T* grad, int l, const T* dz, T* da, bool form_dw) {
  const index_t fan_in = net.units[l], fan_out = net.units[l + 1];
  const T* a_prev = l == 0 ? x.x : buf.a[l - 1];
  const index_t ld_prev = l == 0 ? x.ldx : fan_in;
  if (form_dw) {
    if (l == 0 && x.csr)  // a sparse X: scattered per nonzero (sparse_kernels.cpp)
      k.csr_gemm_tn(*x.csr, x.clear, fan_out, T(1) / m_eff, dz, fan_out, grad + lay.w[0]);
    else  // (pieces of dW's rows, i.e. of fan_in: the sum over m is never cut)
      gemm_pieces<T>(k, poll, true, false, fan_in, fan_out, m, T(1) / m_eff, a_prev, ld_prev, dz,
                     fan_out, T(0), grad + lay.w[l], fan_out, nullptr, Activation::identity);
  }
  k.column_sum(m, fan_out, dz, fan_out, grad + lay.b[l], m_eff);
  if (l > 0)  // dA_(l-1) = dZ_l W_l^T (the input layer's dA is never needed)
    gemm_pieces<T>(k, poll, false, true, m, fan_in, fan_out, T(1), dz, fan_out, params + lay.w[l],
                   fan_out, T(0), da, fan_in, nullptr, Activation::identity);
}

// From dZ_L in buf.d[0] (m x units[L]) down to the first layer: grad = [dW / m_eff (no L2
// term), db, dslope]. buf.d[0] and buf.d[1] are overwritten. With an update_weights callable
// (small batches) the weights' gradients are not formed at all: once dA_(l-1) has been taken
// from the old W_l, update_weights(l, A_(l-1), its ld, dZ_l) steps W_l in place (A_0 is null
// for a sparse X). top_done: the output layer's products are in grad and buf.d[1] already
// (train_epoch_with ran them beside the next batch's gather).
struct NoWeightUpdate {
  template <typename T>
  void operator()(int, const T*, index_t, const T*) const {}
};

template <typename T, typename UpdateWeights = NoWeightUpdate>
void backward_batch(const KernelSet<T>& k, Poll* poll, const NetSpec& net, const Layout& lay,
                    const T* params, index_t m, const Input<T>& x, const BatchBuffers<T>& buf,
                    T m_eff, T* grad, const UpdateWeights* update_weights = nullptr,
                    bool top_done = false) {
  const int L = net.n_layers;
  T* dz = buf.d[0];
  T* other = buf.d[1];
  for (int l = L - 1; l >= 0; --l) {
    const index_t fan_in = net.units[l];
    if (!(top_done && l == L - 1))
      backward_products(k, poll, net, lay, params, m, x, buf, m_eff, grad, l, dz, other,
                        !update_weights);
    if (update_weights)
      (*update_weights)(l, l == 0 ? x.x : buf.a[l - 1], l == 0 ? x.ldx : fan_in, dz);
    if (l == 0) break;
    // dZ_(l-1) = dA_(l-1) * g'(.) in place
    const int h = l - 1;
    if (net.act == Activation::prelu)
      k.prelu_backward(m, fan_in, buf.z[h], fan_in, params + lay.s[h], other, fan_in,
                       grad + lay.s[h], m_eff);
    else
      k.act_backward(net.act, m, fan_in, buf.a[h], fan_in, other, fan_in);
    T* t = dz;
    dz = other;
    other = t;
  }
}

// Copies rows idx[0..m) of the strided matrix src into dst (m x src.cols, row-major); idx null
// means rows first..first+m.
template <typename T>
void gather_rows(const Strided<T>& src, const std::int64_t* idx, index_t first, index_t m, T* dst) {
  const index_t n = src.cols;
  for (index_t r = 0; r < m; ++r) {
    const index_t i = idx ? index_t(idx[r]) : first + r;
    const T* s = src.data + i * src.rs;
    T* d = dst + r * n;
    if (src.cs == 1) {
      std::memcpy(d, s, size_t(n) * sizeof(T));
    } else {
      for (index_t j = 0; j < n; ++j) d[j] = s[j * src.cs];
    }
  }
}

// Can the GEMM read the rows of src in place (unit column stride, rows not overlapping)?
template <typename T>
bool rows_in_place(const Strided<T>& src) {
  return (src.cs == 1 || src.cols == 1) && (src.rows == 1 || src.rs >= src.cols);
}
template <typename T>
index_t ld_in_place(const Strided<T>& src) {
  return src.rows == 1 ? (src.cols > 0 ? src.cols : 1) : src.rs;
}

// The call's kernel set: the active level's, fetched once, with the bf16 GEMM in gemm's place
// for matmul_precision="bfloat16" (float only; the bindings refuse float64 with it).
template <typename T>
KernelSet<T> call_kernels(const NetSpec& net) {
  KernelSet<T> k = kernels<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (net.bf16) k.gemm = bf16_gemm(k);
  } else if (net.bf16) {
    throw std::invalid_argument("matmul_precision='bfloat16' needs float32");
  }
  return k;
}

// Where a call's batches come from (forward, loss_grad, train_epoch are written once over
// these): rows(idx, first, m) is the first layer's Input for rows idx[0..m) of X (first..first+m
// when idx is null), valid until the next rows().
//   DenseRows: read in place when the GEMM can (in order, unit column stride), else gathered
//   into a buffer of the call's workspace (width(): its columns). With ahead (train_epoch) it
//   has two: gather_ahead() fills the one rows() does not hand out, for the next batch, while
//   the calling thread works on this one (train_epoch_with).
template <typename T>
class DenseRows {
 public:
  DenseRows(Strided<T> X, bool by_index) : X_(X), copy_(by_index || !rows_in_place(X)) {}
  index_t width() const { return X_.cols; }
  bool gathers() const { return copy_; }
  void reserve(Arena& arena, index_t rows, bool ahead = false) const {
    if (copy_) arena.reserve<T>(ahead ? 2 * rows : rows, X_.cols);
  }
  void take(Arena& arena, index_t rows, bool ahead = false) {
    if (!copy_) return;
    buf_ = arena.take<T>(rows, X_.cols);
    if (ahead) spare_ = arena.take<T>(rows, X_.cols);
  }
  Input<T> rows(const std::int64_t* idx, index_t first, index_t m) {
    if (!copy_) return {X_.data + first * X_.rs, ld_in_place(X_)};
    if (spare_ && ahead_m_ > 0 && ahead_idx_ == idx && ahead_first_ == first && ahead_m_ == m) {
      std::swap(buf_, spare_);  // gathered ahead
    } else {
      gather_rows(X_, idx, first, m, buf_);
    }
    ahead_m_ = 0;
    return {buf_, X_.cols};
  }
  // Gathers the rows a later rows(idx, first, m) will ask for into the spare buffer (a no-op
  // without one), leaving the rows handed out by the last rows() as they are.
  void gather_ahead(const std::int64_t* idx, index_t first, index_t m) {
    if (!copy_ || !spare_) return;
    gather_rows(X_, idx, first, m, spare_);
    ahead_idx_ = idx;
    ahead_first_ = first;
    ahead_m_ = m;
  }

 private:
  Strided<T> X_;
  bool copy_;
  T* buf_ = nullptr;
  T* spare_ = nullptr;
  const std::int64_t* ahead_idx_ = nullptr;
  index_t ahead_first_ = 0, ahead_m_ = 0;
};

//   SparseRows: a CSR X's rows are named, never copied; each batch clears the rows of dW_0 the
//   one before it wrote (Input::clear).
template <typename T>
class SparseRows {
 public:
  explicit SparseRows(const Csr<T>& X) : X_(X) {}
  index_t width() const { return 0; }
  bool gathers() const { return false; }
  void reserve(Arena&, index_t, bool = false) const {}
  void take(Arena&, index_t, bool = false) {}
  void gather_ahead(const std::int64_t*, index_t, index_t) {}
  Input<T> rows(const std::int64_t* idx, index_t first, index_t m) {
    prev_ = cur_;
    cur_ = {X_, idx, first, m};
    return {nullptr, 0, &cur_, prev_.m > 0 ? &prev_ : nullptr};
  }

 private:
  Csr<T> X_;
  CsrRows<T> cur_{}, prev_{};
};

// ||A^T dZ||_F for A (m x fan_in, leading dimension lda) and dZ (m x fan_out) without forming
// the product, for the small batches whose dW is never formed: ||A^T dZ||_F^2 =
// sum_(r,s) (a_r . a_s) (dz_r . dz_s) over pairs of rows, O(m^2 (fan_in + fan_out)).
template <typename T>
double outer_norm(index_t m, index_t fan_in, index_t fan_out, const T* a, index_t lda,
                  const T* dz) {
  auto dot = [](index_t n, const T* x, const T* y) {
    double s = 0.0;
    for (index_t i = 0; i < n; ++i) s += double(x[i]) * double(y[i]);
    return s;
  };
  double sq = 0.0;
  for (index_t r = 0; r < m; ++r)
    for (index_t s = 0; s < m; ++s)
      sq +=
          dot(fan_in, a + r * lda, a + s * lda) * dot(fan_out, dz + r * fan_out, dz + s * fan_out);
  return std::sqrt(sq > 0.0 ? sq : 0.0);
}

}  // namespace

void set_interrupt_hook(InterruptHook hook) {
  g_interrupt_hook.store(hook, std::memory_order_release);
}

index_t n_params(const NetSpec& net) { return Layout(net).n_params; }
index_t n_weights(const NetSpec& net) { return Layout(net).n_weights; }

namespace {

// forward (network.h) on n rows of X.
template <typename T, typename Rows>
void forward_rows(const NetSpec& net, const T* params, Rows X, index_t n, T* out) {
  const Layout lay(net);
  const index_t n_out = net.units[net.n_layers];
  if (n == 0) return;
  // Chunks of at least 1024 rows keep the GEMM efficient; about 2^20 elements per buffer keep
  // the memory bounded (a few MiB) for any n.
  const index_t widest = lay.widest_hidden > X.width() ? lay.widest_hidden : X.width();
  index_t chunk = (index_t(1) << 20) / (widest > 0 ? widest : 1);
  if (chunk < 1024) chunk = 1024;
  if (chunk > n) chunk = n;

  Arena arena;
  BatchBuffers<T> buf;
  buf.reserve(arena, net, lay, chunk, false);
  X.reserve(arena, chunk);
  arena.allocate();
  buf.take(arena, net, lay, chunk, false);
  X.take(arena, chunk);

  const KernelSet<T> k = call_kernels<T>(net);
  Poll poll;
  for (index_t r0 = 0; r0 < n; r0 += chunk) {
    const index_t m = n - r0 < chunk ? n - r0 : chunk;
    T* o = out + r0 * n_out;
    forward_batch(k, &poll, net, lay, params, m, X.rows(nullptr, r0, m), buf, o, n_out);
    k.output_forward(net.out, m, n_out, o, n_out);
    poll.check();
  }
}

// loss_grad (network.h) on the m rows of X.
template <typename T, typename Rows>
double loss_grad_rows(const NetSpec& net, const T* params, Rows X, index_t m, Strided<T> Y,
                      const T* sw, index_t sw_stride, double alpha, T* grad) {
  const Layout lay(net);
  const KernelSet<T> k = call_kernels<T>(net);
  const index_t n_out = net.units[net.n_layers];
  const bool y_direct = Y.cs == 1 || n_out == 1;
  const bool sw_direct = sw == nullptr || sw_stride == 1;

  Arena arena;
  BatchBuffers<T> buf;
  buf.reserve(arena, net, lay, m, true);
  X.reserve(arena, m);
  if (!y_direct) arena.reserve<T>(m, n_out);
  if (!sw_direct) arena.reserve<T>(m);
  arena.reserve<double>(m);
  arena.reserve<double>(reduce_blocks(lay.n_weights));
  arena.allocate();
  buf.take(arena, net, lay, m, true);

  X.take(arena, m);
  const Input<T> x = X.rows(nullptr, 0, m);
  const T* y = Y.data;
  index_t ldy = Y.rs;
  if (!y_direct) {
    T* yb = arena.take<T>(m, n_out);
    gather_rows(Y, nullptr, 0, m, yb);
    y = yb;
    ldy = n_out;
  }
  const T* w = sw;
  if (!sw_direct) {
    T* wb = arena.take<T>(m);
    for (index_t i = 0; i < m; ++i) wb[i] = sw[i * sw_stride];
    w = wb;
  }
  double* row_loss = arena.take<double>(m);
  double* partials = arena.take<double>(reduce_blocks(lay.n_weights));

  double m_eff = double(m);
  if (w) {
    m_eff = 0.0;
    for (index_t i = 0; i < m; ++i) m_eff += double(w[i]);
  }

  Poll poll;
  forward_batch(k, &poll, net, lay, params, m, x, buf, buf.z_out, n_out);
  const double data =
      k.output_loss_grad(net.out, m, n_out, buf.z_out, n_out, y, ldy, w, buf.d[0], n_out, row_loss);
  poll.check();
  backward_batch(k, &poll, net, lay, params, m, x, buf, T(m_eff), grad);
  double loss = data / m_eff;
  if (alpha != 0.0) {
    const double sum_sq = k.sum_squares(lay.n_weights, params, partials);
    loss += 0.5 * alpha * sum_sq / m_eff;
    k.axpy(lay.n_weights, T(alpha / m_eff), params, grad);  // + alpha W / m
  }
  return loss;
}

// One epoch with the solver Opt: the batches, each stepped by Opt's kernels (`opt`) with the
// Step its schedule gives.
template <typename T, typename Opt, typename Rows>
double train_epoch_with(const NetSpec& net, T* params, T* state, Rows X, Strided<T> Y, const T* sw,
                        index_t sw_stride, const std::int64_t* order, index_t n_order,
                        index_t batch_size, TrainOptions& opts, const KernelSet<T>& k) {
  const Layout lay(net);
  const OptimizerKernels<T>& opt = k.solver[int(opts.solver)];
  const index_t n_out = net.units[net.n_layers];
  const index_t rows = batch_size < n_order ? batch_size : n_order;
  const index_t np = lay.n_params, nw = lay.n_weights;

  // The next batch's X rows are gathered by a helper thread while the calling thread runs the
  // output layer's forward product, the loss and that layer's back-propagation products, when
  // those products run on one thread anyway (fewer than 2 kMinFlopsPerThread flops each, e.g. 1
  // MFLOP for the lecture's 784-500-500-10 at batch 100). Without it the gather, random rows of
  // a large X from memory, kept the calling thread alone for 3.5-5% of the step. Small batches
  // (the outer steps) skip it: their gather is a few rows.
  const int L = net.n_layers;
  const double top_flops = 2.0 * double(rows) * double(net.units[L - 1]) * double(n_out);
  const bool ahead = X.gathers() && rows > kOuterMaxRows && n_order > rows &&
                     top_flops < 2.0 * double(kMinFlopsPerThread);

  Arena arena;
  BatchBuffers<T> buf;
  buf.reserve(arena, net, lay, rows, true);
  X.reserve(arena, rows, ahead);                 // gathered X rows (dense X), two with ahead
  arena.reserve<T>(rows, n_out);                 // gathered Y rows
  arena.reserve<T>(rows);                        // gathered sample weights
  arena.reserve<T>(np);                          // gradient
  const index_t n_partials = reduce_blocks(np);  // >= any layer's reduce_blocks(fan_in * fan_out)
  arena.reserve<double>(rows);
  arena.reserve<double>(n_partials);
  arena.allocate();
  buf.take(arena, net, lay, rows, true);
  X.take(arena, rows, ahead);
  T* yb = arena.take<T>(rows, n_out);
  T* wb = arena.take<T>(rows);
  T* grad = arena.take<T>(np);
  double* row_loss = arena.take<double>(rows);
  double* partials = arena.take<double>(n_partials);
  const bool want_sum_sq = opts.alpha != 0.0;
  double* norms = opts.grad_norms;  // the optional record (network.h); null: off
  if (norms)
    for (int l = 0; l < net.n_layers; ++l) norms[l] = 0.0;

  double accumulated = 0.0;
  for (index_t start = 0; start < n_order; start += rows) {
    const index_t m = n_order - start < rows ? n_order - start : rows;
    const std::int64_t* idx = order + start;
    const Input<T> x = X.rows(idx, 0, m);
    gather_rows(Y, idx, 0, m, yb);
    double m_eff = double(m);
    if (sw) {
      m_eff = 0.0;
      for (index_t r = 0; r < m; ++r) {
        wb[r] = sw[idx[r] * sw_stride];
        m_eff += double(wb[r]);
      }
    }
    const double l2 = opts.alpha / m_eff;
    const typename Opt::Step step = Opt::schedule(opts);

    const bool outer = m <= kOuterMaxRows && !net.bf16;  // (bf16: every dW through the GEMM)
    const index_t next = n_order - start - m < rows ? n_order - start - m : rows;
    const bool beside = ahead && !outer && next > 0;
    double data = 0.0;
    // The forward pass (with `beside`: its output layer only, the hidden ones being done) and
    // the loss; with `beside` also the output layer's backward products.
    auto output_layer = [&] {
      forward_batch(k, nullptr, net, lay, params, m, x, buf, buf.z_out, n_out, beside ? L - 1 : 0);
      data = k.output_loss_grad(net.out, m, n_out, buf.z_out, n_out, yb, n_out, sw ? wb : nullptr,
                                buf.d[0], n_out, row_loss);
      if (beside)
        backward_products(k, nullptr, net, lay, params, m, x, buf, T(m_eff), grad, L - 1, buf.d[0],
                          buf.d[1], true);
    };
    if (beside) {
      forward_batch(k, nullptr, net, lay, params, m, x, buf, buf.z_out, n_out, 0, L - 1);
      side_by_side(output_layer, [&] { X.gather_ahead(order + start + m, 0, next); });
    } else {
      output_layer();
    }
    double sum_sq = 0.0;
    if (outer) {
      // Small batch: each layer's weights are stepped as soon as back-propagation is past
      // them, with their gradient formed on the fly; then the biases and slopes.
      auto update_weights = [&](int l, const T* a_prev, index_t ld_prev, const T* dz) {
        const index_t fan_in = net.units[l], fan_out = net.units[l + 1], off = lay.w[l];
        if (l == 0 && x.csr) {  // a sparse X: its (sparse) gradient, then the flat step
          const index_t n = fan_in * fan_out;
          k.csr_gemm_tn(*x.csr, x.clear, fan_out, T(1) / T(m_eff), dz, fan_out, grad + off);
          if (norms) norms[l] += double(m) * std::sqrt(k.sum_squares(n, grad + off, partials));
          sum_sq += opt.step(n, n, params + off, grad + off, state + off, np, &step, l2,
                             want_sum_sq ? partials : nullptr);
          return;
        }
        if (norms)
          norms[l] += double(m) * outer_norm(m, fan_in, fan_out, a_prev, ld_prev, dz) / m_eff;
        sum_sq += opt.step_outer(fan_in, fan_out, m, a_prev, ld_prev, dz, fan_out, T(m_eff),
                                 params + off, state + off, np, &step, l2, want_sum_sq, partials);
      };
      backward_batch(k, nullptr, net, lay, params, m, x, buf, T(m_eff), grad, &update_weights);
      opt.step(np - nw, 0, params + nw, grad + nw, state + nw, np, &step, 0.0, nullptr);
    } else {
      backward_batch<T, NoWeightUpdate>(k, nullptr, net, lay, params, m, x, buf, T(m_eff), grad,
                                        nullptr, beside);
      for (int l = 0; norms && l < net.n_layers; ++l)  // grad's dW_l has no L2 term yet
        norms[l] += double(m) * std::sqrt(k.sum_squares(net.units[l] * net.units[l + 1],
                                                        grad + lay.w[l], partials));
      sum_sq =
          opt.step(np, nw, params, grad, state, np, &step, l2, want_sum_sq ? partials : nullptr);
    }
    const double batch_loss = data / m_eff + 0.5 * opts.alpha * sum_sq / m_eff;
    accumulated += batch_loss * double(m);
  }
  for (int l = 0; norms && l < net.n_layers; ++l) norms[l] /= double(n_order);
  return accumulated / double(n_order);
}

template <typename T, typename Rows>
double train_epoch_rows(const NetSpec& net, T* params, T* opt_state, Rows X, Strided<T> Y,
                        const T* sw, index_t sw_stride, const std::int64_t* order, index_t n_order,
                        index_t batch_size, TrainOptions& opts) {
  const KernelSet<T> k = call_kernels<T>(net);  // once: the whole epoch runs at one level
  return visit(opts.solver, [&](auto solver) {
    return train_epoch_with<T, decltype(solver)>(net, params, opt_state, X, Y, sw, sw_stride, order,
                                                 n_order, batch_size, opts, k);
  });
}

}  // namespace

template <typename T>
void forward(const NetSpec& net, const T* params, Strided<T> X, T* out) {
  forward_rows(net, params, DenseRows<T>(X, false), X.rows, out);
}
template <typename T>
void forward(const NetSpec& net, const T* params, const Csr<T>& X, T* out) {
  forward_rows(net, params, SparseRows<T>(X), X.rows, out);
}

template <typename T>
double loss_grad(const NetSpec& net, const T* params, Strided<T> X, Strided<T> Y, const T* sw,
                 index_t sw_stride, double alpha, T* grad) {
  return loss_grad_rows(net, params, DenseRows<T>(X, false), X.rows, Y, sw, sw_stride, alpha, grad);
}
template <typename T>
double loss_grad(const NetSpec& net, const T* params, const Csr<T>& X, Strided<T> Y, const T* sw,
                 index_t sw_stride, double alpha, T* grad) {
  return loss_grad_rows(net, params, SparseRows<T>(X), X.rows, Y, sw, sw_stride, alpha, grad);
}

template <typename T>
double train_epoch(const NetSpec& net, T* params, T* opt_state, Strided<T> X, Strided<T> Y,
                   const T* sw, index_t sw_stride, const std::int64_t* order, index_t n_order,
                   index_t batch_size, TrainOptions& opts) {
  return train_epoch_rows(net, params, opt_state, DenseRows<T>(X, true), Y, sw, sw_stride, order,
                          n_order, batch_size, opts);
}
template <typename T>
double train_epoch(const NetSpec& net, T* params, T* opt_state, const Csr<T>& X, Strided<T> Y,
                   const T* sw, index_t sw_stride, const std::int64_t* order, index_t n_order,
                   index_t batch_size, TrainOptions& opts) {
  return train_epoch_rows(net, params, opt_state, SparseRows<T>(X), Y, sw, sw_stride, order,
                          n_order, batch_size, opts);
}

template void forward<float>(const NetSpec&, const float*, Strided<float>, float*);
template void forward<double>(const NetSpec&, const double*, Strided<double>, double*);
template double loss_grad<float>(const NetSpec&, const float*, Strided<float>, Strided<float>,
                                 const float*, index_t, double, float*);
template double loss_grad<double>(const NetSpec&, const double*, Strided<double>, Strided<double>,
                                  const double*, index_t, double, double*);
template double train_epoch<float>(const NetSpec&, float*, float*, Strided<float>, Strided<float>,
                                   const float*, index_t, const std::int64_t*, index_t, index_t,
                                   TrainOptions&);
template double train_epoch<double>(const NetSpec&, double*, double*, Strided<double>,
                                    Strided<double>, const double*, index_t, const std::int64_t*,
                                    index_t, index_t, TrainOptions&);
template void forward<float>(const NetSpec&, const float*, const Csr<float>&, float*);
template void forward<double>(const NetSpec&, const double*, const Csr<double>&, double*);
template double loss_grad<float>(const NetSpec&, const float*, const Csr<float>&, Strided<float>,
                                 const float*, index_t, double, float*);
template double loss_grad<double>(const NetSpec&, const double*, const Csr<double>&,
                                  Strided<double>, const double*, index_t, double, double*);
template double train_epoch<float>(const NetSpec&, float*, float*, const Csr<float>&,
                                   Strided<float>, const float*, index_t, const std::int64_t*,
                                   index_t, index_t, TrainOptions&);
template double train_epoch<double>(const NetSpec&, double*, double*, const Csr<double>&,
                                    Strided<double>, const double*, index_t, const std::int64_t*,
                                    index_t, index_t, TrainOptions&);

}  // namespace mlpfast
