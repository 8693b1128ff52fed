// bindings.cpp: the only file that sees Python. Converts arrays, checks shapes and dtypes
// (raising ValueError / TypeError with what was wrong), and releases the GIL around the work.
// Sections: array checks and the dtype dispatch shared by every entry point; the names of the
// core's concepts (from the lists of activations.h, losses.h, optimizers.h); gemm; ISA control;
// the training core (forward, loss_grad, train_epoch and their shared batch checks); the module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels.h"
#include "network.h"

namespace py = pybind11;
using mlpfast::Activation;
using mlpfast::index_t;

namespace {

// ---------------------------------------------------------------------------------------------
// Array checks shared by every entry point

enum class DType { f32, f64 };

// dtype equality, not identity: an unpickled array carries an equal but distinct dtype object.
// PyArray_EquivTypes also tells a non-native byte order apart.
template <typename T>
bool has_dtype(const py::array& x) {
  return py::isinstance<py::array_t<T>>(x);
}

DType float_dtype(const py::array& x, const char* what) {
  if (has_dtype<float>(x)) return DType::f32;
  if (has_dtype<double>(x)) return DType::f64;
  throw py::type_error(std::string(what) + " must be a float32 or float64 array, got dtype " +
                       std::string(py::str(x.dtype())));
}

// f(float{}) or f(double{}) by x's dtype (TypeError naming `what` for any other dtype): the one
// place where the entry points pick their float32 or float64 instantiation.
template <typename F>
decltype(auto) with_float_dtype(const py::array& x, const char* what, F&& f) {
  if (float_dtype(x, what) == DType::f32) return f(float{});
  return f(double{});
}

std::string type_name(const py::handle& h) {
  return std::string(py::str(py::type::handle_of(h).attr("__name__")));
}

py::array as_ndarray(const py::handle& obj, const char* what) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(what) + " must be a numpy.ndarray, got " + type_name(obj));
  return py::reinterpret_borrow<py::array>(obj);
}

std::string shape_str(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < x.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(x.shape(i));
  }
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// Is x's data aligned for T (as numpy's ALIGNED flag: an empty array is)?
template <typename T>
bool aligned_for(const py::array& x) {
  return x.size() == 0 || reinterpret_cast<std::uintptr_t>(x.data()) % alignof(T) == 0;
}

// A fresh C-contiguous, aligned copy of x (dtype T already checked): the kernels never see a
// misaligned address, and a private copy cannot be rewritten by another thread during the call.
// (py::array_t<T, c_style | forcecast> would return a C-contiguous misaligned array itself.)
template <typename T>
py::array_t<T> fresh_copy(const py::array& x) {
  py::array_t<T> copy(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::module_::import("numpy").attr("copyto")(copy, x);
  return copy;
}

// x itself when it is C-contiguous and aligned, else fresh_copy(x).
template <typename T>
py::array c_aligned(const py::array& x) {
  if ((x.flags() & py::array::c_style) && aligned_for<T>(x)) return x;
  return fresh_copy<T>(x);
}

// A read-only 2-D operand with unit stride along one axis. Row-major with leading dimension ld
// when `transposed` is false; otherwise the buffer holds the transpose (a Fortran-ordered or .T
// view), which the GEMM absorbs by flipping its trans flag, so no copy is made.
template <typename T>
struct Matrix {
  py::array keep;  // owns a copy when one had to be made
  const T* data;
  index_t rows, cols, ld;
  bool transposed;
};

template <typename T>
Matrix<T> matrix_operand(const py::array& x) {
  const index_t item = sizeof(T);
  const index_t r = x.shape(0), c = x.shape(1);
  const index_t s0 = x.strides(0), s1 = x.strides(1);
  const T* p = static_cast<const T*>(x.data());
  const bool aligned = aligned_for<T>(x);
  if (aligned && (s1 == item || c <= 1) && s0 % item == 0 && s0 >= item * (c > 1 ? c : 1))
    return {x, p, r, c, s0 / item, false};
  if (aligned && (s0 == item || r <= 1) && s1 % item == 0 && s1 >= item * (r > 1 ? r : 1))
    return {x, p, r, c, s1 / item, true};
  auto copy = fresh_copy<T>(x);  // misaligned, or any other strides: one C copy
  return {copy, copy.data(), r, c, c > 0 ? c : 1, false};
}

bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  // Conservative extent check (like numpy's may_share_memory).
  auto extent = [](const py::array& x, const char*& lo, const char*& hi) {
    const char* base = static_cast<const char*>(x.data());
    lo = hi = base;
    for (py::ssize_t i = 0; i < x.ndim(); ++i) {
      const py::ssize_t span = (x.shape(i) - 1) * x.strides(i);
      if (span < 0)
        lo += span;
      else
        hi += span;
    }
    hi += x.itemsize();
  };
  const char *alo, *ahi, *blo, *bhi;
  extent(a, alo, ahi);
  extent(b, blo, bhi);
  return alo < bhi && blo < ahi;
}

// ---------------------------------------------------------------------------------------------
// The names users pass (scikit-learn's spelling), from the concepts' lists; the enumerator of a
// name is its position in the list.

constexpr const char* kActivationNames[] = {MLPFAST_ACTIVATIONS(MLPFAST_NAME)};
constexpr const char* kOutputNames[] = {MLPFAST_OUTPUTS(MLPFAST_NAME)};
constexpr const char* kSolverNames[] = {MLPFAST_SOLVERS(MLPFAST_NAME)};

// PReLU cannot be a GEMM epilogue: its slope is per unit.
bool is_epilogue(size_t i) {
  return mlpfast::visit(Activation(i), [](auto a) { return !decltype(a)::kPerUnitSlope; });
}

// Looks `name` up in `names`; `what` names the argument in errors. Entries for which `allowed`
// is false are left out.
template <typename E, size_t N>
E enum_from_name(const py::object& name, const char* const (&names)[N], const char* what,
                 bool (*allowed)(size_t) = nullptr) {
  std::string choices;
  for (size_t i = 0; i < N; ++i)
    if (!allowed || allowed(i))
      choices += (choices.empty() ? "'" : ", '") + std::string(names[i]) + "'";
  if (!py::isinstance<py::str>(name))
    throw py::type_error(std::string(what) + " must be a string, one of " + choices + "; got " +
                         type_name(name));
  const std::string s = name.cast<std::string>();
  for (size_t i = 0; i < N; ++i)
    if (s == names[i] && (!allowed || allowed(i))) return E(i);
  throw py::value_error(std::string(what) + " must be one of " + choices + "; got '" + s + "'");
}

template <size_t N>
py::tuple name_tuple(const char* const (&names)[N]) {
  py::tuple t(N);
  for (size_t i = 0; i < N; ++i) t[i] = py::str(names[i]);
  return t;
}

Activation epilogue_from_name(const py::object& name) {
  if (name.is_none()) return Activation::identity;
  return enum_from_name<Activation>(name, kActivationNames, "activation", &is_epilogue);
}

// matmul_precision: "highest" (false) or "bfloat16" (true: the bf16 GEMM, float32 only). The
// first bf16 call on a CPU (level) without AVX512-BF16 warns once that the emulated kernel runs.
bool bf16_from_name(const py::object& name) {
  if (!py::isinstance<py::str>(name))
    throw py::type_error("matmul_precision must be a string, 'highest' or 'bfloat16'; got " +
                         type_name(name));
  const std::string s = name.cast<std::string>();
  if (s == "highest") return false;
  if (s != "bfloat16")
    throw py::value_error("matmul_precision must be 'highest' or 'bfloat16'; got '" + s + "'");
  static std::atomic<bool> warned{false};
  const mlpfast::KernelSet<float>& ks = mlpfast::kernels<float>();
  if (!ks.gemm_bf16_dot && !ks.gemm_bf16_amx && !warned.exchange(true))
    if (PyErr_WarnEx(PyExc_RuntimeWarning,
                     "matmul_precision='bfloat16': this CPU (or the selected ISA level) has "
                     "neither AMX-BF16 nor AVX512-BF16; the bf16 products are emulated in "
                     "float32 (same rounding of the operands, not faster)",
                     1) != 0)
      throw py::error_already_set();
  return true;
}

// T is double with matmul_precision="bfloat16": a TypeError (the estimators convert to float32).
template <typename T>
void require_bf16_dtype(bool bf16) {
  if (bf16 && !std::is_same<T, float>::value)
    throw py::type_error(
        "matmul_precision='bfloat16' needs float32 arrays (got float64); the estimators convert "
        "float64 input to float32 for it");
}

// ---------------------------------------------------------------------------------------------
// gemm

template <typename T>
py::array gemm_typed(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                     const py::object& bias_obj, Activation act, const py::object& out_obj,
                     double alpha, double beta, bool bf16) {
  require_bf16_dtype<T>(bf16);
  const index_t m = trans_a ? a.shape(1) : a.shape(0);
  const index_t k = trans_a ? a.shape(0) : a.shape(1);
  const index_t kb = trans_b ? b.shape(1) : b.shape(0);
  const index_t n = trans_b ? b.shape(0) : b.shape(1);
  if (k != kb)
    throw py::value_error("gemm: inner dimensions differ: op(a) is " + std::to_string(m) + " x " +
                          std::to_string(k) + " but op(b) is " + std::to_string(kb) + " x " +
                          std::to_string(n));

  py::array bias_arr;
  const T* bias = nullptr;
  if (!bias_obj.is_none()) {
    py::array bz = as_ndarray(bias_obj, "bias");
    float_dtype(bz, "bias");
    if (!has_dtype<T>(bz))
      throw py::type_error("bias dtype " + std::string(py::str(bz.dtype())) +
                           " does not match a's dtype " + std::string(py::str(a.dtype())));
    if (bz.ndim() != 1 || bz.shape(0) != n)
      throw py::value_error("bias must have shape (" + std::to_string(n) + ",), got " +
                            shape_str(bz));
    bias_arr = c_aligned<T>(bz);
    bias = static_cast<const T*>(bias_arr.data());
  }

  py::array out;
  if (out_obj.is_none()) {
    if (beta != 0.0) throw py::value_error("beta != 0 needs out= (C is read)");
    out = py::array_t<T>({m, n});
  } else {
    out = as_ndarray(out_obj, "out");
    if (!has_dtype<T>(out))
      throw py::type_error("out dtype " + std::string(py::str(out.dtype())) +
                           " does not match a's dtype " + std::string(py::str(a.dtype())));
    if (out.ndim() != 2 || out.shape(0) != m || out.shape(1) != n)
      throw py::value_error("out must have shape (" + std::to_string(m) + ", " + std::to_string(n) +
                            "), got " + shape_str(out));
    if (!(out.flags() & py::array::c_style)) throw py::value_error("out must be C-contiguous");
    if (!aligned_for<T>(out)) throw py::value_error("out must be aligned (it is written in place)");
    if (!out.writeable()) throw py::value_error("out is read-only");
    if (overlaps(out, a) || overlaps(out, b) ||
        (!bias_obj.is_none() && overlaps(out, py::reinterpret_borrow<py::array>(bias_obj))))
      throw py::value_error("out must not share memory with a, b or bias");
  }
  T* c = static_cast<T*>(out.mutable_data());
  if (m == 0 || n == 0) return out;
  // after the checks, and only for a non-empty result: a zero-stride operand of 2**59 rows
  // would be copied (and fail) for nothing
  Matrix<T> A = matrix_operand<T>(a), B = matrix_operand<T>(b);
  {
    py::gil_scoped_release release;
    // A transposed buffer holds op(A)'s transpose already: flip the flag instead of copying.
    const mlpfast::KernelSet<T>& ks = mlpfast::kernels<T>();
    auto fn = ks.gemm;
    if constexpr (std::is_same<T, float>::value)
      if (bf16) fn = mlpfast::bf16_gemm(ks);
    fn(trans_a != A.transposed, trans_b != B.transposed, m, n, k, static_cast<T>(alpha), A.data,
       A.ld, B.data, B.ld, static_cast<T>(beta), c, n, bias, act);
  }
  return out;
}

py::array gemm(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
               const py::object& bias, const py::object& activation, const py::object& out,
               double alpha, double beta, const py::object& matmul_precision) {
  py::array a = as_ndarray(a_obj, "a"), b = as_ndarray(b_obj, "b");
  const DType ta = float_dtype(a, "a"), tb = float_dtype(b, "b");
  if (ta != tb)
    throw py::type_error("a and b must have the same dtype, got " +
                         std::string(py::str(a.dtype())) + " and " +
                         std::string(py::str(b.dtype())));
  if (a.ndim() != 2) throw py::value_error("a must be 2-D, got shape " + shape_str(a));
  if (b.ndim() != 2) throw py::value_error("b must be 2-D, got shape " + shape_str(b));
  const Activation act = epilogue_from_name(activation);
  const bool bf16 = bf16_from_name(matmul_precision);
  return with_float_dtype(a, "a", [&](auto t) {
    return gemm_typed<decltype(t)>(a, b, trans_a, trans_b, bias, act, out, alpha, beta, bf16);
  });
}

// _act_backward(activation, a, dz): dz *= g'(a) in place, a = g(z) (the backward pass's
// activation step, KernelSet::act_backward), for the tests of vecmath.h.
void act_backward(const py::object& activation, const py::object& a_obj, const py::object& dz_obj) {
  const Activation act = epilogue_from_name(activation);
  py::array a = as_ndarray(a_obj, "a"), dz = as_ndarray(dz_obj, "dz");
  if (float_dtype(a, "a") != float_dtype(dz, "dz"))
    throw py::type_error("a and dz must have the same dtype");
  if (a.ndim() != 2 || dz.ndim() != 2 || a.shape(0) != dz.shape(0) || a.shape(1) != dz.shape(1))
    throw py::value_error("a and dz must be 2-D of one shape, got " + shape_str(a) + " and " +
                          shape_str(dz));
  if (!(a.flags() & py::array::c_style) || !(dz.flags() & py::array::c_style))
    throw py::value_error("a and dz must be C-contiguous");
  if (!dz.writeable()) throw py::value_error("dz is read-only");
  if (overlaps(a, dz)) throw py::value_error("dz must not share memory with a");
  with_float_dtype(a, "a", [&](auto t) {
    using T = decltype(t);
    if (!aligned_for<T>(a) || !aligned_for<T>(dz))
      throw py::value_error("a and dz must be aligned");
    const index_t m = a.shape(0), n = a.shape(1);
    py::gil_scoped_release release;
    mlpfast::kernels<T>().act_backward(act, m, n, static_cast<const T*>(a.data()), n,
                                       static_cast<T*>(dz.mutable_data()), n);
  });
}

// ---------------------------------------------------------------------------------------------
// ISA control

std::vector<std::string> available_isas() {
  const char* names[8];
  const int n = mlpfast::available_isas(names, 8);
  return std::vector<std::string>(names, names + n);
}

void set_isa(const std::string& name) {
  // (the dispatcher takes a C string: "avx2\0x" would select avx2)
  if (name.find('\0') != std::string::npos || !mlpfast::set_isa(name.c_str())) {
    std::string avail;
    for (const auto& s : available_isas()) avail += (avail.empty() ? "" : ", ") + s;
    throw py::value_error("ISA level '" + name +
                          "' is unknown or not supported by this CPU; available: " + avail);
  }
}

// bf16 kernels (kernels.h Bf16Kernel): by name, for tests and benchmarks

std::vector<std::string> bf16_kernels() {
  const mlpfast::KernelSet<float>& k = mlpfast::kernels<float>();
  std::vector<std::string> names{"emulated"};
  if (k.gemm_bf16_dot) names.push_back("avx512_bf16");
  if (k.gemm_bf16_amx) names.push_back("amx");
  return names;
}

std::string bf16_kernel() {
  const mlpfast::KernelSet<float>& k = mlpfast::kernels<float>();
  const auto fn = mlpfast::bf16_gemm(k);
  return fn == k.gemm_bf16_amx ? "amx" : fn == k.gemm_bf16_dot ? "avx512_bf16" : "emulated";
}

void set_bf16_kernel(const std::string& name) {
  using mlpfast::Bf16Kernel;
  const std::pair<const char*, Bf16Kernel> choices[] = {{"best", Bf16Kernel::best},
                                                        {"emulated", Bf16Kernel::emulated},
                                                        {"avx512_bf16", Bf16Kernel::avx512_bf16},
                                                        {"amx", Bf16Kernel::amx}};
  const auto have = bf16_kernels();
  for (const auto& c : choices) {
    if (name != c.first) continue;
    if (name != "best" && std::find(have.begin(), have.end(), name) == have.end()) break;
    return mlpfast::set_bf16_kernel(c.second);
  }
  std::string avail = "best";
  for (const auto& s : have) avail += ", " + s;
  throw py::value_error("bf16 kernel '" + name + "' is unknown or not available at ISA level '" +
                        mlpfast::active_isa() + "' on this CPU; available: " + avail);
}

// ---------------------------------------------------------------------------------------------
// training core: forward, loss_grad, train_epoch (mlpfast.reference's functions of those names)
//
// Every check happens before anything is written: a call either raises (ValueError for bad
// values and shapes, TypeError for bad types and dtypes) and leaves params / opt_state as they
// were, or runs to the end with the GIL released.

using mlpfast::Output;
using mlpfast::Strided;

struct Net {
  std::vector<index_t> units;
  mlpfast::NetSpec spec{};
  index_t n_params = 0;
};

// An entry of a sequence of ints (`what`): an int, not a bool, through __index__, which may raise
// (its exception propagates) or return any int, however large (overflow: beyond long long).
struct Int {
  py::object index;
  long long value;
  bool overflow;
};

Int int_item(const py::handle& item, const char* what) {
  if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
    throw py::type_error(std::string(what) + " must contain ints, got " + type_name(item));
  auto index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return {std::move(index), v, overflow != 0};
}

Net parse_net(const py::object& layer_units, const py::object& activation,
              const py::object& out_activation) {
  Net net;
  if (py::isinstance<py::str>(layer_units) || py::isinstance<py::bytes>(layer_units) ||
      !PySequence_Check(layer_units.ptr()))
    throw py::type_error("layer_units must be a sequence of ints, got " + type_name(layer_units));
  constexpr long long kMaxUnits = 1LL << 31;
  for (const py::handle item : layer_units) {
    const Int v = int_item(item, "layer_units");
    if (v.overflow || v.value < 1 || v.value >= kMaxUnits)
      throw py::value_error("layer_units must all be >= 1 and < 2**31, got " +
                            std::string(py::str(v.index)));
    net.units.push_back(index_t(v.value));
  }
  if (net.units.size() < 2)
    throw py::value_error("layer_units needs at least 2 entries (inputs and outputs), got " +
                          std::to_string(net.units.size()));
  net.spec.act = enum_from_name<Activation>(activation, kActivationNames, "activation");
  net.spec.out = enum_from_name<Output>(out_activation, kOutputNames, "out_activation");
  net.spec.units = net.units.data();
  net.spec.n_layers = int(net.units.size() - 1);
  // The buffer length, guarded against overflow of index_t.
  long double total = 0;
  for (size_t l = 0; l + 1 < net.units.size(); ++l)
    total += (long double)(net.units[l]) * net.units[l + 1] + net.units[l + 1];
  if (total > (long double)(index_t(1) << 48))
    throw py::value_error("layer_units describe a network too large to hold in memory");
  net.n_params = mlpfast::n_params(net.spec);
  return net;
}

// The array `what` must have the dtype T of params.
template <typename T>
void require_dtype(const py::array& x, const char* what) {
  if (!has_dtype<T>(x))
    throw py::type_error(std::string(what) + " has dtype " + std::string(py::str(x.dtype())) +
                         " but params is " + (sizeof(T) == 4 ? "float32" : "float64") +
                         "; params, opt_state, X, Y and sample_weight must all share one "
                         "floating dtype");
}

// A read-only view usable by the core: element strides, aligned data; anything else gets one
// C-contiguous copy (kept alive by `keep`).
template <typename T>
struct View2D {
  py::array keep;
  Strided<T> s;
};

template <typename T>
View2D<T> view_2d(const py::array& x, index_t rows, index_t cols) {
  const index_t item = sizeof(T);
  index_t s0 = x.ndim() >= 1 ? x.strides(0) : item;
  index_t s1 = x.ndim() == 2 ? x.strides(1) : item;
  if (aligned_for<T>(x) && s0 % item == 0 && s1 % item == 0)
    return {x, {static_cast<const T*>(x.data()), rows, cols, s0 / item, s1 / item}};
  auto copy = fresh_copy<T>(x);
  return {copy, {copy.data(), rows, cols, cols, 1}};
}

// params / opt_state: 1-D, dtype T, C-contiguous, aligned, writeable when `writes`.
template <typename T>
py::array flat_buffer(const py::object& obj, const char* what, index_t expected,
                      const std::string& why, bool writes) {
  py::array x = as_ndarray(obj, what);
  require_dtype<T>(x, what);
  if (x.ndim() != 1)
    throw py::value_error(std::string(what) + " must be 1-D, got shape " + shape_str(x));
  if (x.shape(0) != expected)
    throw py::value_error(std::string(what) + " has " + std::to_string(x.shape(0)) + " entries; " +
                          why + " need " + std::to_string(expected));
  if (writes) {
    if (!(x.flags() & py::array::c_style) || !aligned_for<T>(x))
      throw py::value_error(std::string(what) +
                            " must be C-contiguous and aligned (it is updated in place)");
    if (!x.writeable()) throw py::value_error(std::string(what) + " is read-only");
    return x;
  }
  return c_aligned<T>(x);
}

std::string net_str(const Net& net, const py::object& activation) {
  std::string s = "layer_units [";
  for (size_t i = 0; i < net.units.size(); ++i) s += (i ? ", " : "") + std::to_string(net.units[i]);
  return s + "] with activation '" + activation.cast<std::string>() + "'";
}

template <typename T>
View2D<T> inputs_X(const py::array& X, const Net& net, bool allow_empty) {
  require_dtype<T>(X, "X");
  if (X.ndim() != 2) throw py::value_error("X must be 2-D, got shape " + shape_str(X));
  if (X.shape(1) != net.units[0])
    throw py::value_error("X has " + std::to_string(X.shape(1)) +
                          " columns but layer_units[0]"
                          " is " +
                          std::to_string(net.units[0]));
  if (!allow_empty && X.shape(0) == 0) throw py::value_error("X has no rows (empty batch)");
  return view_2d<T>(X, X.shape(0), X.shape(1));
}

// Y: (n, n_out), or (n,) when n_out == 1.
template <typename T>
View2D<T> inputs_Y(const py::array& Y, const Net& net, index_t n) {
  require_dtype<T>(Y, "Y");
  const index_t n_out = net.units.back();
  const bool ok = (Y.ndim() == 2 && Y.shape(0) == n && Y.shape(1) == n_out) ||
                  (Y.ndim() == 1 && n_out == 1 && Y.shape(0) == n);
  if (!ok)
    throw py::value_error("Y must have shape (" + std::to_string(n) + ", " + std::to_string(n_out) +
                          ") (X's rows, layer_units[-1]), got " + shape_str(Y));
  return view_2d<T>(Y, n, n_out);
}

template <typename T>
View2D<T> inputs_sw(const py::array& sw, index_t n) {
  require_dtype<T>(sw, "sample_weight");
  if (sw.ndim() != 1 || sw.shape(0) != n)
    throw py::value_error("sample_weight must have shape (" + std::to_string(n) +
                          ",) (one weight per row of X), got " + shape_str(sw));
  return view_2d<T>(sw, n, 1);
}

// A scipy.sparse X (matrix or array). The core takes CSR; other formats raise TypeError (the
// estimators convert them first, as scikit-learn does).
bool is_sparse(const py::handle& X) {
  if (py::isinstance<py::array>(X)) return false;
  return py::module_::import("scipy.sparse").attr("issparse")(X).cast<bool>();
}

// The core's view of a CSR X (sparse.h), its arrays kept alive; indices and indptr both int32 or
// both int64 (a mixed pair becomes int64). Checked here, with the GIL released for the scans:
// dtype T, X.shape[1] == layer_units[0], indptr from 0 and non-decreasing, columns in range,
// stored values finite.
template <typename T>
struct SparseX {
  py::array data, indices, indptr;
  mlpfast::Csr<T> csr;
};

template <typename I>
std::string csr_structure_error(const mlpfast::Csr<double>& X) {
  const I* ptr = static_cast<const I*>(X.indptr);
  const I* ind = static_cast<const I*>(X.indices);
  if (ptr[0] != 0) return "X.indptr[0] must be 0, got " + std::to_string(ptr[0]);
  for (index_t i = 0; i < X.rows; ++i)
    if (ptr[i + 1] < ptr[i])
      return "X.indptr must be non-decreasing (indptr[" + std::to_string(i + 1) +
             "] = " + std::to_string(ptr[i + 1]) + " < " + std::to_string(ptr[i]) + ")";
  if (index_t(ptr[X.rows]) > X.nnz)
    return "X.indptr[-1] = " + std::to_string(ptr[X.rows]) + " exceeds the " +
           std::to_string(X.nnz) + " stored values";
  for (index_t p = 0; p < index_t(ptr[X.rows]); ++p)
    if (ind[p] < 0 || index_t(ind[p]) >= X.cols)
      return "X.indices[" + std::to_string(p) + "] = " + std::to_string(ind[p]) +
             " is out of range for X with " + std::to_string(X.cols) + " columns";
  return "";
}

// X.shape: two ints >= 0. (Nothing but scipy's constructor checks it: X._shape can be set to
// anything, and a shape[0] of -1 with an empty indptr passed the length check below.)
std::vector<index_t> sparse_shape(const py::handle& X) {
  const py::object shape = py::getattr(X, "shape", py::none());
  if (!py::isinstance<py::tuple>(shape))
    throw py::type_error("X.shape must be a tuple, got " + type_name(shape));
  if (py::len(shape) != 2)
    throw py::value_error("X must be 2-D, got shape " + std::string(py::repr(shape)));
  std::vector<index_t> out;
  for (const py::handle item : shape) {
    const Int v = int_item(item, "X.shape");
    if (v.overflow || v.value < 0 || v.value >= std::numeric_limits<index_t>::max())
      throw py::value_error("X.shape must hold sizes >= 0 and < 2**63 - 1, got " +
                            std::string(py::repr(shape)));
    out.push_back(index_t(v.value));
  }
  return out;
}

template <typename T>
SparseX<T> sparse_X(const py::handle& X, const Net& net, bool allow_empty) {
  const std::string format = py::str(py::getattr(X, "format", py::none()));
  if (format != "csr")
    throw py::type_error("a sparse X must be in CSR format, got '" + format +
                         "' (convert with X.tocsr())");
  const auto shape = sparse_shape(X);
  SparseX<T> s;
  // (getattr: a subclass that calls itself CSR may lack the arrays: as_ndarray's TypeError)
  s.data = as_ndarray(py::getattr(X, "data", py::none()), "X.data");
  require_dtype<T>(s.data, "X");
  if (shape[1] != net.units[0])
    throw py::value_error("X has " + std::to_string(shape[1]) + " columns but layer_units[0] is " +
                          std::to_string(net.units[0]));
  if (!allow_empty && shape[0] == 0) throw py::value_error("X has no rows (empty batch)");
  py::array ind = as_ndarray(py::getattr(X, "indices", py::none()), "X.indices");
  py::array ptr = as_ndarray(py::getattr(X, "indptr", py::none()), "X.indptr");
  for (const py::array* a : {&s.data, &ind, &ptr})
    if (a->ndim() != 1) throw py::value_error("X's data, indices and indptr must be 1-D");
  const auto np = py::module_::import("numpy");
  const bool narrow = ind.dtype().equal(py::dtype::of<std::int32_t>()) &&
                      ptr.dtype().equal(py::dtype::of<std::int32_t>());
  for (const py::array* a : {&ind, &ptr})
    if (a->dtype().kind() != 'i' && a->dtype().kind() != 'u')
      throw py::type_error("X.indices and X.indptr must be integer arrays, got dtype " +
                           std::string(py::str(a->dtype())));
  const py::object idx_dtype = narrow ? np.attr("int32") : np.attr("int64");
  auto req = [&](const py::array& a, const py::object& dt) {
    return py::array(np.attr("require")(a, dt, py::make_tuple("C", "A")));
  };
  s.data = req(s.data, s.data.dtype());
  s.indices = req(ind, idx_dtype);
  s.indptr = req(ptr, idx_dtype);
  if (s.indptr.shape(0) != shape[0] + 1)  // (shape[0] < 2**63 - 1: no overflow)
    throw py::value_error("X.indptr has " + std::to_string(s.indptr.shape(0)) + " entries; X's " +
                          std::to_string(shape[0]) + " rows need " + std::to_string(shape[0] + 1));
  const index_t stored = std::min<index_t>(s.data.shape(0), s.indices.shape(0));
  s.csr = {static_cast<const T*>(s.data.data()),
           s.indices.data(),
           s.indptr.data(),
           !narrow,
           shape[0],
           shape[1],
           stored};
  std::string error;
  bool finite_values = true;
  {
    py::gil_scoped_release release;
    mlpfast::Csr<double> shape_only{nullptr,    s.csr.indices, s.csr.indptr, s.csr.wide,
                                    s.csr.rows, s.csr.cols,    s.csr.nnz};
    error = narrow ? csr_structure_error<std::int32_t>(shape_only)
                   : csr_structure_error<std::int64_t>(shape_only);
    if (error.empty()) {
      const index_t used = narrow
                               ? index_t(static_cast<const std::int32_t*>(s.csr.indptr)[shape[0]])
                               : index_t(static_cast<const std::int64_t*>(s.csr.indptr)[shape[0]]);
      s.csr.nnz = used;
      finite_values = mlpfast::kernels<T>().all_finite(1, used, s.csr.data, used, 1);
    }
  }
  if (!error.empty()) throw py::value_error(error);
  if (!finite_values) throw py::value_error("X contains NaN or infinity");
  return s;
}

// A zero stride repeats one row (column) of memory: it is scanned once. (A zero-stride X of
// 2**62 rows is a legal train_epoch input, where order picks a few rows; row by row, its scan
// would not end.)
template <typename T>
bool finite(const Strided<T>& s) {
  const index_t rows = s.rs == 0 && s.rows > 1 ? 1 : s.rows;
  const index_t cols = s.cs == 0 && s.cols > 1 ? 1 : s.cols;
  return mlpfast::kernels<T>().all_finite(rows, cols, s.data, s.rs, s.cs);
}

// Raises ValueError naming the first of `arrays` (null entries skipped) that holds NaN or
// infinity; the scans run with the GIL released.
template <typename T>
void require_finite(std::initializer_list<std::pair<const char*, const Strided<T>*>> arrays) {
  const char* bad = nullptr;
  {
    py::gil_scoped_release release;
    for (const auto& a : arrays)
      if (a.second && !finite(*a.second)) {
        bad = a.first;
        break;
      }
  }
  if (bad) throw py::value_error(std::string(bad) + " contains NaN or infinity");
}

// Raises unless every buffer the call writes is disjoint from every other array it touches.
void check_disjoint(const std::vector<std::pair<const char*, py::array>>& written,
                    const std::vector<std::pair<const char*, py::array>>& read) {
  for (size_t i = 0; i < written.size(); ++i) {
    for (size_t j = i + 1; j < written.size(); ++j)
      if (overlaps(written[i].second, written[j].second))
        throw py::value_error(std::string(written[i].first) + " and " + written[j].first +
                              " must not share memory");
    for (const auto& r : read)
      if (overlaps(written[i].second, r.second))
        throw py::value_error(std::string(written[i].first) + " and " + r.first +
                              " must not share memory");
  }
}

// A training batch (loss_grad, train_epoch): X, Y and the optional sample weights, their shapes
// and dtypes checked against the network, their values checked finite.
template <typename T>
struct Batch {
  View2D<T> X, Y, W{};  // W: a private copy of the sample weights (checked, then used)
  py::array sw;         // sample_weight as given (when given)
  bool given_sw = false;
  bool sparse = false;  // X is CSR: S, not X
  SparseX<T> S{};
  bool has_sw() const { return given_sw; }
  const T* sw_data() const { return has_sw() ? W.s.data : nullptr; }
  index_t sw_stride() const { return has_sw() ? W.s.rs : 1; }
  index_t rows() const { return sparse ? S.csr.rows : X.s.rows; }
  // f(the core's X): a Strided<T> or a Csr<T>
  template <typename F>
  decltype(auto) with_X(F&& f) const {
    return sparse ? f(S.csr) : f(X.s);
  }
  // the arrays of X, for the overlap checks
  std::vector<std::pair<const char*, py::array>> x_arrays() const {
    if (sparse) return {{"X.data", S.data}, {"X.indices", S.indices}, {"X.indptr", S.indptr}};
    return {{"X", X.keep}};
  }
};

template <typename T>
Batch<T> batch_inputs(const Net& net, const py::object& X, const py::array& Y,
                      const py::object& sw_obj) {
  Batch<T> b{};
  b.given_sw = !sw_obj.is_none();
  b.sparse = is_sparse(X);
  if (b.sparse)
    b.S = sparse_X<T>(X, net, false);
  else
    b.X = inputs_X<T>(as_ndarray(X, "X"), net, false);
  b.Y = inputs_Y<T>(Y, net, b.rows());
  if (b.given_sw) {
    b.sw = as_ndarray(sw_obj, "sample_weight");
    inputs_sw<T>(b.sw, b.rows());  // the checks
    // The weights are checked (finite, positive batch sums) and then used with the GIL
    // released: a copy, so that another thread cannot rewrite them in between (O(n)). A
    // zero-stride sw (np.broadcast_to, any length) holds one weight: that one is copied.
    const bool one = b.rows() > 1 && b.sw.strides(0) == 0;
    const py::array_t<T> copy = fresh_copy<T>(one ? py::array(b.sw[py::slice(0, 1, 1)]) : b.sw);
    b.W = {copy, {copy.data(), b.rows(), 1, one ? 0 : 1, 1}};
  }
  return b;
}

template <typename T>
void require_finite(const Batch<T>& b) {
  require_finite<T>({{"X", b.sparse ? nullptr : &b.X.s},  // (a sparse X: checked in sparse_X)
                     {"Y", &b.Y.s},
                     {"sample_weight", b.has_sw() ? &b.W.s : nullptr}});
}

// With sample weights: the first batch (rows order[k * batch_size ...], or rows k * batch_size
// ... in order when order is null) whose weights do not have a positive sum, which divides the
// batch's loss and gradient, and that sum in `sum`; -1 when there is none (or no weights).
template <typename T>
index_t first_light_batch(const Batch<T>& b, const std::int64_t* order, index_t n,
                          index_t batch_size, double& sum) {
  if (!b.has_sw()) return -1;
  py::gil_scoped_release release;
  const Strided<T>& w = b.W.s;
  if (w.rs == 0) {  // one weight for every row (2**59 of them, maybe): every batch has its sign
    sum = double(w.data[0]) * double(batch_size < n ? batch_size : n);
    return sum > 0.0 ? -1 : 0;
  }
  for (index_t start = 0; start < n; start += batch_size) {
    const index_t end = start + batch_size < n ? start + batch_size : n;
    double s = 0.0;
    for (index_t i = start; i < end; ++i) s += double(w.data[(order ? order[i] : i) * w.rs]);
    if (!(s > 0.0)) {
      sum = s;
      return start / batch_size;
    }
  }
  return -1;
}

// Hyper-parameters: ValueError unless `ok`, naming the domain (scikit-learn's
// _parameter_constraints, where the update formulas are defined) and the value.
void require_domain(bool ok, const char* name, double value, const char* domain) {
  if (!ok)
    throw py::value_error(std::string(name) + " must be " + domain + ", got " +
                          std::string(py::repr(py::float_(value))));
}

// A scale that must be finite, and >= 0 (or > 0 when `positive`), in the training dtype T
// (1e39 is finite in float64 but not in float32; 1e-50 is 0 in float32). Compared in double
// first: converting an out-of-range double to float is undefined behaviour.
template <typename T>
void require_scale(const char* name, double value, bool positive) {
  const bool f32 = sizeof(T) == 4;
  require_domain(std::fabs(value) <= double(std::numeric_limits<T>::max()), name, value,
                 f32 ? "finite in float32 (the training dtype)" : "finite");
  require_domain(positive ? T(value) > T(0) : value >= 0.0, name, value,
                 !positive ? ">= 0"
                 : f32     ? "> 0 in float32 (the training dtype)"
                           : "> 0");
}

template <typename T>
py::array forward_typed(const Net& net, const py::object& params_obj, const py::object& activation,
                        const py::object& X_obj) {
  const std::string why = net_str(net, activation);
  py::array params = flat_buffer<T>(params_obj, "params", net.n_params, why, false);
  const index_t n_out = net.units.back();
  const T* p = static_cast<const T*>(params.data());
  if (is_sparse(X_obj)) {
    const SparseX<T> X = sparse_X<T>(X_obj, net, true);
    auto out = py::array_t<T>({X.csr.rows, n_out});
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    mlpfast::forward<T>(net.spec, p, X.csr, o);
    return std::move(out);
  }
  View2D<T> X = inputs_X<T>(as_ndarray(X_obj, "X"), net, true);
  auto out = py::array_t<T>({X.s.rows, n_out});
  require_finite<T>({{"X", &X.s}});
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    mlpfast::forward<T>(net.spec, p, X.s, o);
  }
  return std::move(out);
}

py::array core_forward(const py::object& params, const py::object& layer_units,
                       const py::object& activation, const py::object& out_activation,
                       const py::object& X, const py::object& matmul_precision) {
  Net net = parse_net(layer_units, activation, out_activation);
  net.spec.bf16 = bf16_from_name(matmul_precision);
  py::array p = as_ndarray(params, "params");
  return with_float_dtype(p, "params", [&](auto t) {
    require_bf16_dtype<decltype(t)>(net.spec.bf16);
    return forward_typed<decltype(t)>(net, params, activation, X);
  });
}

template <typename T>
py::tuple loss_grad_typed(const Net& net, const py::object& params_obj,
                          const py::object& activation, const py::object& X_obj,
                          const py::array& Y_arr, const py::object& sw_obj, double alpha) {
  const std::string why = net_str(net, activation);
  py::array params = flat_buffer<T>(params_obj, "params", net.n_params, why, false);
  const Batch<T> b = batch_inputs<T>(net, X_obj, Y_arr, sw_obj);
  require_scale<T>("alpha", alpha, false);
  require_finite(b);
  double w_sum = 0.0;
  if (first_light_batch<T>(b, nullptr, b.rows(), b.rows(), w_sum) >= 0)
    throw py::value_error(
        "sample_weight must have a positive sum (the loss is a weighted mean), "
        "got " +
        std::to_string(w_sum));

  auto grad = py::array_t<T>(net.n_params);
  T* g = grad.mutable_data();
  double loss;
  {
    py::gil_scoped_release release;
    loss = b.with_X([&](const auto& X) {
      return mlpfast::loss_grad<T>(net.spec, static_cast<const T*>(params.data()), X, b.Y.s,
                                   b.sw_data(), b.sw_stride(), alpha, g);
    });
  }
  return py::make_tuple(loss, grad);
}

py::tuple core_loss_grad(const py::object& params, const py::object& layer_units,
                         const py::object& activation, const py::object& out_activation,
                         const py::object& X, const py::object& Y, const py::object& sample_weight,
                         double alpha, const py::object& matmul_precision) {
  Net net = parse_net(layer_units, activation, out_activation);
  net.spec.bf16 = bf16_from_name(matmul_precision);
  py::array p = as_ndarray(params, "params");
  return with_float_dtype(p, "params", [&](auto t) {
    require_bf16_dtype<decltype(t)>(net.spec.bf16);
    return loss_grad_typed<decltype(t)>(net, params, activation, X, as_ndarray(Y, "Y"),
                                        sample_weight, alpha);
  });
}

// order: any integer array (or sequence), as a private int64 copy: it is checked and then used
// with the GIL released, so another thread must not be able to rewrite it in between.
py::array_t<std::int64_t> order_array(const py::object& obj) {
  py::array a = py::isinstance<py::array>(obj)
                    ? py::reinterpret_borrow<py::array>(obj)
                    : py::array(py::module_::import("numpy").attr("asarray")(obj));
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error("order must be an array of integers, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1) throw py::value_error("order must be 1-D, got shape " + shape_str(a));
  if (a.shape(0) == 0) throw py::value_error("order is empty (an epoch needs samples)");
  py::array_t<std::int64_t> copy(a.shape(0));
  py::module_::import("numpy").attr("copyto")(copy, a, py::arg("casting") = "unsafe");
  return copy;
}

template <typename T>
py::tuple train_epoch_typed(const Net& net, const py::object& params_obj,
                            const py::object& state_obj, const py::object& activation,
                            const py::object& X_obj, const py::array& Y_arr,
                            const py::object& sw_obj, const py::object& order_obj,
                            index_t batch_size, mlpfast::TrainOptions opts,
                            const py::object& norms_obj) {
  const std::string why = net_str(net, activation);
  py::array params = flat_buffer<T>(params_obj, "params", net.n_params, why, true);
  // the solver's state: kStateBuffers buffers of n_params
  const auto [buffers, state_doc] = mlpfast::visit(opts.solver, [](auto solver) {
    using Opt = decltype(solver);
    return std::make_pair(index_t(Opt::kStateBuffers), Opt::kStateDoc);
  });
  const std::string solver_name = kSolverNames[int(opts.solver)];
  py::array state =
      flat_buffer<T>(state_obj, "opt_state", buffers * net.n_params,
                     "solver '" + solver_name + "' (" + state_doc + ") for " + why, true);
  const Batch<T> b = batch_inputs<T>(net, X_obj, Y_arr, sw_obj);
  py::array_t<std::int64_t> order = order_array(order_obj);
  if (batch_size < 1)
    throw py::value_error("batch_size must be >= 1, got " + std::to_string(batch_size));
  require_scale<T>("alpha", opts.alpha, false);
  require_scale<T>("learning_rate", opts.learning_rate, true);
  require_scale<T>("epsilon", opts.epsilon, true);
  // Adam counts its steps in t: t + the number of batches must fit int64
  const index_t n_batches = (order.shape(0) - 1) / batch_size + 1;
  if (opts.t > std::numeric_limits<std::int64_t>::max() - n_batches)
    throw py::value_error("t = " + std::to_string(opts.t) + " plus the epoch's " +
                          std::to_string(n_batches) + " batches does not fit int64");

  std::vector<std::pair<const char*, py::array>> read = b.x_arrays();
  read.push_back({"Y", Y_arr});
  read.push_back({"order", order});
  if (b.has_sw()) read.push_back({"sample_weight", b.sw});
  std::vector<std::pair<const char*, py::array>> written = {{"params", params},
                                                            {"opt_state", state}};
  if (!norms_obj.is_none()) {  // the optional per-layer gradient norms: float64, written
    py::array norms = flat_buffer<double>(norms_obj, "grad_norms", net.spec.n_layers,
                                          "the weight layers of " + why, true);
    written.push_back({"grad_norms", norms});
    opts.grad_norms = static_cast<double*>(norms.mutable_data());
  }
  check_disjoint(written, read);

  const index_t n = b.rows(), n_order = order.shape(0);
  const std::int64_t* idx = order.data();
  index_t bad_index = -1;
  {
    py::gil_scoped_release release;
    for (index_t i = 0; i < n_order && bad_index < 0; ++i)
      if (idx[i] < 0 || idx[i] >= n) bad_index = i;
  }
  if (bad_index >= 0)
    throw py::value_error("order[" + std::to_string(bad_index) +
                          "] = " + std::to_string(idx[bad_index]) + " is out of range for X with " +
                          std::to_string(n) + " rows");
  require_finite(b);
  double sum = 0.0;
  const index_t bad = first_light_batch(b, idx, n_order, batch_size, sum);
  if (bad >= 0)
    throw py::value_error("the sample weights of batch " + std::to_string(bad) + " sum to " +
                          std::to_string(sum) + "; every batch needs a positive total weight");

  double loss;
  {
    py::gil_scoped_release release;
    loss = b.with_X([&](const auto& X) {
      return mlpfast::train_epoch<T>(net.spec, static_cast<T*>(params.mutable_data()),
                                     static_cast<T*>(state.mutable_data()), X, b.Y.s, b.sw_data(),
                                     b.sw_stride(), idx, n_order, batch_size, opts);
    });
  }
  return py::make_tuple(loss, opts.t);
}

py::tuple core_train_epoch(const py::object& params, const py::object& opt_state,
                           const py::object& layer_units, const py::object& activation,
                           const py::object& out_activation, const py::object& X,
                           const py::object& Y, const py::object& sample_weight,
                           const py::object& order, std::int64_t batch_size,
                           const std::string& solver, double alpha, double learning_rate,
                           double momentum, bool nesterov, double beta_1, double beta_2,
                           double epsilon, std::int64_t t, const py::object& grad_norms,
                           const py::object& matmul_precision) {
  Net net = parse_net(layer_units, activation, out_activation);
  net.spec.bf16 = bf16_from_name(matmul_precision);
  const auto solver_id = enum_from_name<mlpfast::Solver>(py::str(solver), kSolverNames, "solver");
  const std::pair<const char*, double> hyper[] = {
      {"alpha", alpha},       {"learning_rate", learning_rate},
      {"momentum", momentum}, {"beta_1", beta_1},
      {"beta_2", beta_2},     {"epsilon", epsilon}};
  for (const auto& h : hyper) require_domain(std::isfinite(h.second), h.first, h.second, "finite");
  require_domain(momentum >= 0.0 && momentum <= 1.0, "momentum", momentum, "in [0, 1]");
  require_domain(beta_1 >= 0.0 && beta_1 < 1.0, "beta_1", beta_1, "in [0, 1)");
  require_domain(beta_2 >= 0.0 && beta_2 < 1.0, "beta_2", beta_2, "in [0, 1)");
  if (t < 0) throw py::value_error("t must be >= 0, got " + std::to_string(t));
  const mlpfast::TrainOptions opts{solver_id, alpha,  learning_rate, momentum, nesterov,
                                   beta_1,    beta_2, epsilon,       t};
  py::array p = as_ndarray(params, "params");
  return with_float_dtype(p, "params", [&](auto dt) {
    require_bf16_dtype<decltype(dt)>(net.spec.bf16);
    return train_epoch_typed<decltype(dt)>(net, params, opt_state, activation, X,
                                           as_ndarray(Y, "Y"), sample_weight, order, batch_size,
                                           opts, grad_norms);
  });
}

// ---------------------------------------------------------------------------------------------
// predict fast path: predict_forward (the estimators' predict, predict_proba, predict_log_proba)
//
// predict_forward(state, X, proba) is the estimator's forward pass on X, with every check that
// scikit-learn's predict makes done here in one call, or None whenever the call is not the plain
// case: then the estimator takes scikit-learn's full path, which gives the same result or raises
// scikit-learn's error with scikit-learn's message. `state` is the estimator's __dict__. The
// plain case: a fitted estimator without feature names whose coefs_ / intercepts_ (and
// prelu_slopes_) are still views into its flat _params (what _flat_params checks); X a
// C-contiguous, aligned, 2-D float32 or float64 array with at least one row, n_features_in_
// columns and finite values. The result equals _forward_pass_fast's bit for bit: computed in
// the dtype numpy gives X @ coefs_ (float32 only when X and params both are; the other operand
// is converted exactly), with the same kernels. With proba and one output (a binary
// classifier), the result is scikit-learn's [1 - p, p] columns. A model with
// matmul_precision="bfloat16" (state's entry) computes in float32 with the bf16 GEMM. The GIL is
// released around the finiteness scan, the conversions and the forward pass.

// state[key] when it is a numpy array, else None (a borrowed handle).
py::handle fast_array_item(const py::dict& state, const char* key) {
  PyObject* v = PyDict_GetItemString(state.ptr(), key);
  return v && py::isinstance<py::array>(v) ? py::handle(v) : py::handle();
}

// True when every array of the lists state[key] is a view into params; adds their sizes to
// `total`. A missing key counts as an empty list.
bool fast_views_of(const py::dict& state, const char* key, const py::array& params,
                   py::ssize_t& total) {
  PyObject* list = PyDict_GetItemString(state.ptr(), key);
  if (!list) return true;
  if (!PyList_Check(list)) return false;
  for (const py::handle item : py::reinterpret_borrow<py::list>(list)) {
    if (!py::isinstance<py::array>(item)) return false;
    const auto a = py::reinterpret_borrow<py::array>(item);
    if (!a.base().is(params)) return false;
    total += a.size();
  }
  return true;
}

// An ndim-D, C-contiguous, aligned float32 or float64 array of native byte order.
bool fast_plain(const py::array& x, py::ssize_t ndim) {
  return x.ndim() == ndim && (x.flags() & py::array::c_style) &&
         reinterpret_cast<std::uintptr_t>(x.data()) % x.itemsize() == 0 &&
         (has_dtype<float>(x) || has_dtype<double>(x));
}

// The forward pass in T on X (dtype TX) and params (dtype TP), converted to T first where they
// differ; false (nothing written) when X holds NaN or infinity.
template <typename T, typename TX, typename TP>
bool fast_forward_typed(const mlpfast::NetSpec& spec, const TP* params, index_t n_params,
                        const TX* x, index_t rows, index_t cols, T* out) {
  if (!mlpfast::kernels<TX>().all_finite(rows, cols, x, cols, 1)) return false;
  std::vector<T> x_conv, p_conv;
  const T* xt = reinterpret_cast<const T*>(x);
  const T* pt = reinterpret_cast<const T*>(params);
  if (!std::is_same<T, TX>::value) {
    x_conv.assign(x, x + rows * cols);
    xt = x_conv.data();
  }
  if (!std::is_same<T, TP>::value) {
    p_conv.assign(params, params + n_params);
    pt = p_conv.data();
  }
  mlpfast::forward<T>(spec, pt, Strided<T>{xt, rows, cols, cols, 1}, out);
  return true;
}

template <typename T>
py::object fast_forward_out(const mlpfast::NetSpec& spec, const py::array& params,
                            const py::array& X, bool proba) {
  const index_t rows = X.shape(0), cols = X.shape(1), n_out = spec.units[spec.n_layers];
  const bool two_columns = proba && n_out == 1;
  py::array_t<T> out({rows, two_columns ? index_t(2) : n_out});
  T* o = out.mutable_data();
  const bool x32 = has_dtype<float>(X), p32 = has_dtype<float>(params);
  const index_t n_params = params.size();
  bool finite;
  {
    py::gil_scoped_release release;
    std::vector<T> p(two_columns ? rows : 0);
    T* dst = two_columns ? p.data() : o;
    if (x32 && p32)
      finite = fast_forward_typed<T>(spec, static_cast<const float*>(params.data()), n_params,
                                     static_cast<const float*>(X.data()), rows, cols, dst);
    else if (x32)
      finite = fast_forward_typed<T>(spec, static_cast<const double*>(params.data()), n_params,
                                     static_cast<const float*>(X.data()), rows, cols, dst);
    else if (p32)
      finite = fast_forward_typed<T>(spec, static_cast<const float*>(params.data()), n_params,
                                     static_cast<const double*>(X.data()), rows, cols, dst);
    else
      finite = fast_forward_typed<T>(spec, static_cast<const double*>(params.data()), n_params,
                                     static_cast<const double*>(X.data()), rows, cols, dst);
    if (finite && two_columns)
      for (index_t i = 0; i < rows; ++i) {
        o[2 * i] = T(1) - p[i];
        o[2 * i + 1] = p[i];
      }
  }
  if (!finite) return py::none();
  return std::move(out);
}

py::object predict_forward(const py::dict& state, const py::handle& X_obj, bool proba) {
  if (!py::isinstance<py::array>(X_obj)) return py::none();
  const auto X = py::reinterpret_borrow<py::array>(X_obj);
  if (!fast_plain(X, 2) || X.shape(0) < 1) return py::none();
  if (!PyDict_GetItemString(state.ptr(), "coefs_") ||
      PyDict_GetItemString(state.ptr(), "feature_names_in_"))
    return py::none();
  PyObject* n_features = PyDict_GetItemString(state.ptr(), "n_features_in_");
  if (!n_features || !PyLong_Check(n_features)) return py::none();
  const Py_ssize_t width = PyLong_AsSsize_t(n_features);
  if (width == -1 && PyErr_Occurred()) PyErr_Clear();  // too large for Py_ssize_t
  if (width != X.shape(1)) return py::none();
  const py::handle params_h = fast_array_item(state, "_params");
  if (!params_h) return py::none();
  const auto params = py::reinterpret_borrow<py::array>(params_h);
  if (!fast_plain(params, 1)) return py::none();
  py::ssize_t total = 0;
  if (!fast_views_of(state, "coefs_", params, total) ||
      !fast_views_of(state, "intercepts_", params, total) ||
      !fast_views_of(state, "prelu_slopes_", params, total) || total != params.size())
    return py::none();
  PyObject* units = PyDict_GetItemString(state.ptr(), "_layer_units");
  PyObject* act = PyDict_GetItemString(state.ptr(), "activation");
  PyObject* out_act = PyDict_GetItemString(state.ptr(), "out_activation_");
  if (!units || !act || !out_act) return py::none();
  Net net;
  try {
    net = parse_net(py::reinterpret_borrow<py::object>(units),
                    py::reinterpret_borrow<py::object>(act),
                    py::reinterpret_borrow<py::object>(out_act));
  } catch (const py::builtin_exception&) {
    return py::none();  // scikit-learn's path raises what is wrong
  } catch (py::error_already_set&) {
    return py::none();  // (the error is cleared as the exception object goes)
  }
  if (net.units[0] != X.shape(1) || net.n_params != params.size()) return py::none();
  // matmul_precision="bfloat16" (a float32 model): computed in float32 whatever X's dtype
  if (PyObject* precision = PyDict_GetItemString(state.ptr(), "matmul_precision")) {
    if (!PyUnicode_Check(precision)) return py::none();
    const std::string name = py::reinterpret_borrow<py::str>(precision);
    if (name == "bfloat16") {
      if (!has_dtype<float>(params)) return py::none();
      net.spec.bf16 = true;
      return fast_forward_out<float>(net.spec, params, X, proba);
    }
    if (name != "highest") return py::none();
  }
  if (has_dtype<float>(X) && has_dtype<float>(params))
    return fast_forward_out<float>(net.spec, params, X, proba);
  return fast_forward_out<double>(net.spec, params, X, proba);
}

}  // namespace

void register_perceptron(py::module_& m);  // bindings_perceptron.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlpfast's C++ core: GEMM, training kernels, CPU dispatch (private; use mlpfast)";
  register_perceptron(m);

  // The kernel tables are filled here, at import, not by whichever thread calls first.
  mlpfast::init_dispatch();
  // Ctrl-C during a long forward / loss_grad: between pieces of work (network.h), the calling
  // thread takes the GIL for a moment and runs Python's signal handlers; a KeyboardInterrupt
  // (or any exception they raise) abandons the call.
  mlpfast::set_interrupt_hook([] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  });

  if (const char* forced = std::getenv("MLPFAST_ISA"); forced && *forced) {
    if (!mlpfast::set_isa(forced))
      throw py::import_error(std::string("MLPFAST_ISA=") + forced +
                             " is unknown or not supported by this CPU");
  }

  // The names of every concept the core implements, for the Python side to validate against
  // and the tests to parametrise over (mlpfast.reference is checked to name the same sets).
  m.attr("ACTIVATIONS") = name_tuple(kActivationNames);
  m.attr("OUTPUT_ACTIVATIONS") = name_tuple(kOutputNames);
  m.attr("SOLVERS") = name_tuple(kSolverNames);
  {
    const char* levels[8];
    const int n = mlpfast::compiled_isas(levels, 8);
    py::tuple t(n);
    for (int i = 0; i < n; ++i) t[i] = py::str(levels[i]);
    m.attr("ISA_LEVELS") = t;  // compiled into this build, worst to best
  }

  m.def(
      "isa", [] { return std::string(mlpfast::active_isa()); },
      "Name of the instruction-set level the kernels run at.");
  m.def("available_isas", &available_isas,
        "Instruction-set levels this build has and this CPU supports, worst to best.");
  m.def("set_isa", &set_isa, py::arg("name"),
        "Select an instruction-set level (for tests and benchmarks).");
  // a forked child must never enter the parent's OpenMP runtime (threads.h)
  // and MLPFAST_LOAD_ADAPTATION is read once, here
  mlpfast::init_thread_policy();
  m.def("max_threads", &mlpfast::max_threads, "Threads the kernels may use right now.");
  m.def(
      "set_default_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_default_threads: n must be >= 1");
        mlpfast::set_default_threads(n);
      },
      py::arg("n"),
      "Default team size when OMP_NUM_THREADS and threadpoolctl say nothing (set at import).");
  m.def(
      "thread_stats",
      [] {
        const mlpfast::ThreadStats s = mlpfast::thread_stats();
        py::dict d;
        d["load_adaptation"] = s.enabled;
        d["team_regions"] = s.team_regions;
        d["judged"] = s.judged;
        d["late"] = s.late;
        d["solo"] = s.solo;
        d["max_late_ns"] = s.max_late_ns;
        return d;
      },
      "What the load adaptation saw since import (csrc/threads.h): parallel regions of 2+ "
      "threads, those judged (started soon after the previous one), those with a helper more "
      "than 0.5 ms late (each starts or doubles a pause), regions a pause sent to one thread, "
      "and the latest helper arrival seen in a judged region.");
  m.def(
      "_note_region",
      [](int threads, std::int64_t start_ns, std::int64_t arrival_ns, std::int64_t end_ns) {
        mlpfast::note_region(threads, start_ns, arrival_ns, end_ns);
      },
      py::arg("threads"), py::arg("start_ns"), py::arg("arrival_ns"), py::arg("end_ns"),
      "Feeds the load adaptation one region's timing (tests only; clock: _now_ns()).");
  m.def("_now_ns", &mlpfast::now_ns, "The load adaptation's clock (tests only).");
  m.def("_region_threads", &mlpfast::region_threads,
        "The team a parallel region would get now (tests only).");
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("bias") = py::none(),
        py::arg("activation") = py::none(), py::arg("out") = py::none(), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("matmul_precision") = "highest",
        R"doc(op(a) @ op(b) * alpha + beta * out (+ bias, then activation).

op(x) is x.T when trans_x is set. a and b are float32 or float64 of the same dtype; the result
has their dtype. out, when given, must be C-contiguous, writeable, of shape (m, n).
matmul_precision="bfloat16" (float32 only): op(a) and op(b) rounded to bfloat16, products summed
in float32, alpha applied to the sums.)doc");
  m.def("bf16_kernels", &bf16_kernels,
        "The bf16 GEMM kernels the active ISA level has on this CPU: 'emulated', then "
        "'avx512_bf16' and 'amx' where present.");
  m.def("bf16_kernel", &bf16_kernel, "The bf16 GEMM kernel matmul_precision='bfloat16' runs now.");
  m.def("set_bf16_kernel", &set_bf16_kernel, py::arg("name"),
        "Select the bf16 GEMM kernel: 'best' (the default: amx, else avx512_bf16, else emulated) "
        "or one of bf16_kernels() (tests, benchmarks).");

  m.def("_act_backward", &act_backward, py::arg("activation"), py::arg("a"), py::arg("dz"),
        "dz *= g'(a) in place, a = g(z): the backward pass's activation step (for tests).");

  // training core
  m.def("forward", &core_forward, py::arg("params"), py::arg("layer_units"), py::arg("activation"),
        py::arg("out_activation"), py::arg("X"), py::kw_only(),
        py::arg("matmul_precision") = "highest",
        "The network's output for the rows of X (mlpfast.reference.forward).");
  m.def("loss_grad", &core_loss_grad, py::arg("params"), py::arg("layer_units"),
        py::arg("activation"), py::arg("out_activation"), py::arg("X"), py::arg("Y"),
        py::arg("sample_weight") = py::none(), py::arg("alpha") = 0.0, py::kw_only(),
        py::arg("matmul_precision") = "highest",
        "(loss, grad) on one batch, grad laid out like params (mlpfast.reference.loss_grad).");
  m.def("train_epoch", &core_train_epoch, py::arg("params"), py::arg("opt_state"),
        py::arg("layer_units"), py::arg("activation"), py::arg("out_activation"), py::arg("X"),
        py::arg("Y"), py::arg("sample_weight"), py::arg("order"), py::arg("batch_size"),
        py::kw_only(), py::arg("solver") = "adam", py::arg("alpha") = 0.0,
        py::arg("learning_rate") = 1e-3, py::arg("momentum") = 0.9, py::arg("nesterov") = true,
        py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-8,
        py::arg("t") = 0, py::arg("grad_norms") = py::none(),
        py::arg("matmul_precision") = "highest",
        R"doc(One epoch of mini-batch training, in place on params and opt_state.

Same semantics as mlpfast.reference.train_epoch; returns (loss, t). Runs every batch in C++ with
the GIL released. grad_norms: None, or a float64 array of one entry per weight layer, set to the
epoch's per-layer gradient norms (reference.train_epoch says which).)doc");

  // predict fast path
  m.def("predict_forward", &predict_forward, py::arg("state"), py::arg("X"), py::arg("proba"),
        R"doc(The estimator's forward pass on X for predict / predict_proba, checks included, or
None when X or the estimator is not the plain case (then take scikit-learn's path).

state is the estimator's __dict__; with proba and one output, the [1 - p, p] columns.)doc");
}
