// bindings_perceptron.cpp: the Python face of perceptron.cpp (registered by bindings.cpp).
//
// _core.perceptron_epoch(X, indices, indptr, state, active, ...) runs one epoch, in place on the
// arrays of `state` (a dict that python/mlpfast/_perceptron.py builds and owns), with the GIL
// released. Every array is checked here (dtype, shape, C order, alignment, writeable; the CSR
// structure and the sample orders in range), so that no call can read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "perceptron.h"

namespace py = pybind11;
using mlpfast::index_t;

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw py::value_error("perceptron_epoch: " + what + " " + why);
}

py::array array_of(const py::handle& obj, const std::string& what, py::ssize_t ndim) {
  if (!py::isinstance<py::array>(obj) || py::reinterpret_borrow<py::array>(obj).ndim() != ndim)
    throw py::type_error("perceptron_epoch: " + what + " must be a " + std::to_string(ndim) +
                         "-D numpy array");
  return py::reinterpret_borrow<py::array>(obj);
}

// x: exactly dtype D, C-contiguous, aligned, of the given shape (-1: any), writeable if asked.
template <typename D>
D* checked(const py::handle& obj, const std::string& what, std::vector<py::ssize_t> shape,
           bool writes) {
  if (!py::isinstance<py::array_t<D>>(obj))
    throw py::type_error("perceptron_epoch: " + what + " must be a numpy array of dtype " +
                         std::string(py::str(py::dtype::of<D>())));
  auto x = py::reinterpret_borrow<py::array>(obj);
  if (x.ndim() != py::ssize_t(shape.size())) bad(what, "has the wrong number of dimensions");
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] >= 0 && x.shape(py::ssize_t(i)) != shape[i]) bad(what, "has the wrong shape");
  if (!(x.flags() & py::array::c_style)) bad(what, "must be C-contiguous");
  if (x.size() && reinterpret_cast<std::uintptr_t>(x.data()) % alignof(D)) bad(what, "misaligned");
  if (writes && !x.writeable()) bad(what, "is read-only");
  return static_cast<D*>(const_cast<void*>(x.data()));
}

// x_float32: None, or (float64 dense X only) X's float32 copy from float32_copy_if_exact, read
// instead of X; the caller made it from this X.
template <typename T>
void epoch_typed(const py::array& X, const py::object& indices_obj, const py::object& indptr_obj,
                 const py::dict& st, const py::array& active_obj,
                 const mlpfast::PerceptronOptions& opt, const py::object& x_float32) {
  const py::array coef_arr = array_of(st["coef"], "coef", 2);
  const py::ssize_t m = coef_arr.shape(0), d = coef_arr.shape(1);
  const py::ssize_t n = array_of(st["label"], "label", 1).shape(0);
  mlpfast::PerceptronData<T> data{};
  data.n_samples = n;
  data.n_features = d;
  if (indices_obj.is_none()) {
    data.values = checked<T>(X, "X", {n, d}, false);
    if (!x_float32.is_none()) {
      if (!std::is_same_v<T, double>) bad("x_float32", "is for a float64 X only");
      data.compact = checked<float>(x_float32, "x_float32", {n, d}, false);
    }
  } else {  // CSR: indptr 0 .. nnz, non-decreasing; indices in [0, d)
    if (!x_float32.is_none()) bad("x_float32", "is for a dense X only");
    const py::ssize_t nnz = X.ndim() == 1 ? X.shape(0) : -2;
    data.values = checked<T>(X, "X.data", {nnz}, false);
    data.indices = checked<std::int32_t>(indices_obj, "X.indices", {nnz}, false);
    data.indptr = checked<std::int32_t>(indptr_obj, "X.indptr", {n + 1}, false);
    if (data.indptr[0] != 0 || data.indptr[n] != nnz) bad("X.indptr", "does not span X.data");
    for (py::ssize_t i = 0; i < n; ++i)
      if (data.indptr[i + 1] < data.indptr[i]) bad("X.indptr", "decreases");
    for (py::ssize_t j = 0; j < nnz; ++j)
      if (data.indices[j] < 0 || data.indices[j] >= d) bad("X.indices", "out of range");
  }
  data.label = checked<std::int32_t>(st["label"], "label", {n}, false);
  data.sample_weight = checked<T>(st["sample_weight"], "sample_weight", {n}, false);
  data.val_mask = checked<std::uint8_t>(st["val_mask"], "val_mask", {n}, false);

  const bool l1 = opt.penalty == mlpfast::PerceptronPenalty::l1 ||
                  opt.penalty == mlpfast::PerceptronPenalty::elasticnet;
  T* coef = checked<T>(st["coef"], "coef", {m, d}, true);
  T* q = l1 ? checked<T>(st["q"], "q", {m, d}, true) : nullptr;
  auto* order = checked<std::int32_t>(st["order"], "order", {m, n}, true);
  auto* intercept = checked<double>(st["intercept"], "intercept", {m}, true);
  T* wscale = checked<T>(st["wscale"], "wscale", {m}, true);
  T* sq_norm = checked<T>(st["sq_norm"], "sq_norm", {m}, true);
  T* l1_norm = checked<T>(st["l1_norm"], "l1_norm", {m}, true);
  auto* u = checked<double>(st["u"], "u", {m}, true);
  auto* seed = checked<std::uint32_t>(st["seed"], "seed", {m}, false);
  auto* positive = checked<std::int32_t>(st["positive"], "positive", {m}, false);
  auto* wpos = checked<double>(st["weight_pos"], "weight_pos", {m}, false);
  auto* wneg = checked<double>(st["weight_neg"], "weight_neg", {m}, false);
  auto* sumloss = checked<double>(st["sumloss"], "sumloss", {m}, true);
  auto* objective = checked<double>(st["objective"], "objective", {m}, true);
  auto* nonfinite = checked<std::uint8_t>(st["nonfinite"], "nonfinite", {m}, true);
  const py::ssize_t n_active = active_obj.ndim() == 1 ? active_obj.shape(0) : -2;
  const auto* active = checked<std::int64_t>(active_obj, "active", {n_active}, false);

  std::vector<char> seen(size_t(m), 0);
  std::vector<mlpfast::PerceptronVector<T>> vecs;
  for (py::ssize_t a = 0; a < n_active; ++a) {
    const std::int64_t k = active[a];
    if (k < 0 || k >= m || seen[size_t(k)]) bad("active", "must list distinct rows of coef");
    seen[size_t(k)] = 1;
    std::int32_t* ord = order + k * n;
    for (py::ssize_t i = 0; i < n; ++i)
      if (ord[i] < 0 || ord[i] >= n) bad("order", "out of range");
    vecs.push_back({coef + k * d, q ? q + k * d : nullptr, ord, intercept + k, wscale + k,
                    sq_norm + k, l1_norm + k, u + k, seed[k], positive[k], wpos[k], wneg[k],
                    sumloss + k, objective + k, nonfinite + k});
  }
  py::gil_scoped_release release;
  mlpfast::perceptron_epoch<T>(data, vecs.data(), index_t(vecs.size()), opt);
}

void perceptron_epoch(const py::array& X, const py::object& indices, const py::object& indptr,
                      const py::dict& state, const py::array& active, int penalty, double alpha,
                      double l1_ratio, double eta0, double intercept_decay, bool fit_intercept,
                      bool shuffle, int n_threads, const py::object& x_float32) {
  if (penalty < 0 || penalty > 3) throw py::value_error("perceptron_epoch: bad penalty code");
  const mlpfast::PerceptronOptions opt{mlpfast::PerceptronPenalty(penalty),
                                       alpha,
                                       l1_ratio,
                                       eta0,
                                       intercept_decay,
                                       fit_intercept,
                                       shuffle,
                                       n_threads < 1 ? 1 : n_threads};
  if (py::isinstance<py::array_t<float>>(X))
    epoch_typed<float>(X, indices, indptr, state, active, opt, x_float32);
  else if (py::isinstance<py::array_t<double>>(X))
    epoch_typed<double>(X, indices, indptr, state, active, opt, x_float32);
  else
    throw py::type_error("perceptron_epoch: X must be float32 or float64");
}

// X (float64, 2-D, C order) as float32 when every value converts exactly (then the float32
// copy widens back to X bit for bit), else None: stops at the first value that does not.
py::object float32_copy_if_exact(const py::array& X) {
  const py::ssize_t rows = X.ndim() == 2 ? X.shape(0) : -2;
  const double* x = checked<double>(X, "X", {rows, -1}, false);
  const std::size_t size = std::size_t(X.size());
  py::array_t<float> out({X.shape(0), X.shape(1)});
  float* o = out.mutable_data();
  bool exact = true;
  {
    py::gil_scoped_release release;
    constexpr std::size_t kBlock = 4096;  // the inner loop vectorizes; the test is per block
    for (std::size_t b = 0; b < size && exact; b += kBlock) {
      const std::size_t e = std::min(size, b + kBlock);
      bool ok = true;
      for (std::size_t i = b; i < e; ++i) {
        o[i] = static_cast<float>(x[i]);
        ok &= static_cast<double>(o[i]) == x[i];
      }
      exact = ok;
    }
  }
  if (!exact) return py::none();
  return std::move(out);
}

}  // namespace

void register_perceptron(py::module_& m) {
  m.def("perceptron_epoch", &perceptron_epoch, py::arg("X"), py::arg("indices"), py::arg("indptr"),
        py::arg("state"), py::arg("active"), py::kw_only(), py::arg("penalty"), py::arg("alpha"),
        py::arg("l1_ratio"), py::arg("eta0"), py::arg("intercept_decay"), py::arg("fit_intercept"),
        py::arg("shuffle"), py::arg("n_threads"), py::arg("x_float32") = py::none(),
        R"doc(One epoch of scikit-learn's Perceptron SGD for the rows `active` of state["coef"].

X: dense (n, d), or the data of a CSR matrix with `indices`/`indptr` (int32). x_float32: for a
dense float64 X, its float32 copy from float32_copy_if_exact, read instead of X (the same
values; half the bytes). In place on the arrays of `state` (see
python/mlpfast/_perceptron.py); the GIL is released.)doc");
  m.def("float32_copy_if_exact", &float32_copy_if_exact, py::arg("X"),
        R"doc(X (float64, 2-D, C-contiguous) as a float32 array if every value is a float32 value
(the copy then widens back to X exactly), else None.)doc");
}
