// bindings.cpp: the only file that sees Python. Converts arrays, checks shapes and dtypes
// (raising ValueError / TypeError with what was wrong), and releases the GIL around the work.
// Sections: ISA control, gemm, training core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels.h"

namespace py = pybind11;
using mlpfast::Activation;
using mlpfast::index_t;

namespace {

// ---------------------------------------------------------------------------------------------
// Array checks shared by every entry point

enum class DType { f32, f64 };

DType float_dtype(const py::array& x, const char* what) {
  if (x.dtype().is(py::dtype::of<float>())) return DType::f32;
  if (x.dtype().is(py::dtype::of<double>())) return DType::f64;
  throw py::type_error(std::string(what) + " must be a float32 or float64 array, got dtype " +
                       std::string(py::str(x.dtype())));
}

py::array as_ndarray(const py::handle& obj, const char* what) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(what) + " must be a numpy.ndarray, got " +
                         std::string(py::str(obj.get_type().attr("__name__"))));
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
  if ((s1 == item || c <= 1) && s0 % item == 0 && s0 >= item * (c > 1 ? c : 1))
    return {x, p, r, c, s0 / item, false};
  if ((s0 == item || r <= 1) && s1 % item == 0 && s1 >= item * (r > 1 ? r : 1))
    return {x, p, r, c, s1 / item, true};
  auto copy = py::array_t<T, py::array::c_style>(x);  // any other strides: one C copy
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
      if (span < 0) lo += span; else hi += span;
    }
    hi += x.itemsize();
  };
  const char *alo, *ahi, *blo, *bhi;
  extent(a, alo, ahi);
  extent(b, blo, bhi);
  return alo < bhi && blo < ahi;
}

Activation epilogue_from_name(const py::object& name) {
  if (name.is_none()) return Activation::identity;
  if (!py::isinstance<py::str>(name))
    throw py::type_error("activation must be a string or None");
  const std::string s = name.cast<std::string>();
  if (s == "identity") return Activation::identity;
  if (s == "logistic") return Activation::logistic;
  if (s == "tanh") return Activation::tanh;
  if (s == "relu") return Activation::relu;
  if (s == "leaky_relu") return Activation::leaky_relu;
  if (s == "softplus") return Activation::softplus;
  throw py::value_error("activation must be one of None, 'identity', 'logistic', 'tanh', 'relu', "
                        "'leaky_relu', 'softplus'; got '" + s + "'");
}

// ---------------------------------------------------------------------------------------------
// gemm

template <typename T>
py::array gemm_typed(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                     const py::object& bias_obj, Activation act, const py::object& out_obj,
                     double alpha, double beta) {
  Matrix<T> A = matrix_operand<T>(a), B = matrix_operand<T>(b);
  const index_t m = trans_a ? A.cols : A.rows;
  const index_t k = trans_a ? A.rows : A.cols;
  const index_t kb = trans_b ? B.cols : B.rows;
  const index_t n = trans_b ? B.rows : B.cols;
  if (k != kb)
    throw py::value_error("gemm: inner dimensions differ: op(a) is " + std::to_string(m) + " x " +
                          std::to_string(k) + " but op(b) is " + std::to_string(kb) + " x " +
                          std::to_string(n));

  py::array_t<T, py::array::c_style> bias_arr;
  const T* bias = nullptr;
  if (!bias_obj.is_none()) {
    py::array bz = as_ndarray(bias_obj, "bias");
    float_dtype(bz, "bias");
    if (!bz.dtype().is(py::dtype::of<T>()))
      throw py::type_error("bias dtype " + std::string(py::str(bz.dtype())) +
                           " does not match a's dtype " + std::string(py::str(a.dtype())));
    if (bz.ndim() != 1 || bz.shape(0) != n)
      throw py::value_error("bias must have shape (" + std::to_string(n) + ",), got " +
                            shape_str(bz));
    bias_arr = py::array_t<T, py::array::c_style>(bz);
    bias = bias_arr.data();
  }

  py::array out;
  if (out_obj.is_none()) {
    if (beta != 0.0) throw py::value_error("beta != 0 needs out= (C is read)");
    out = py::array_t<T>({m, n});
  } else {
    out = as_ndarray(out_obj, "out");
    if (!out.dtype().is(py::dtype::of<T>()))
      throw py::type_error("out dtype " + std::string(py::str(out.dtype())) +
                           " does not match a's dtype " + std::string(py::str(a.dtype())));
    if (out.ndim() != 2 || out.shape(0) != m || out.shape(1) != n)
      throw py::value_error("out must have shape (" + std::to_string(m) + ", " +
                            std::to_string(n) + "), got " + shape_str(out));
    if (!(out.flags() & py::array::c_style))
      throw py::value_error("out must be C-contiguous");
    if (!out.writeable()) throw py::value_error("out is read-only");
    if (overlaps(out, a) || overlaps(out, b) ||
        (!bias_obj.is_none() && overlaps(out, py::reinterpret_borrow<py::array>(bias_obj))))
      throw py::value_error("out must not share memory with a, b or bias");
  }
  T* c = static_cast<T*>(out.mutable_data());
  if (m == 0 || n == 0) return out;
  {
    py::gil_scoped_release release;
    // A transposed buffer holds op(A)'s transpose already: flip the flag instead of copying.
    mlpfast::kernels<T>().gemm(trans_a != A.transposed, trans_b != B.transposed, m, n, k,
                               static_cast<T>(alpha), A.data, A.ld, B.data, B.ld,
                               static_cast<T>(beta), c, n, bias, act);
  }
  return out;
}

py::array gemm(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
               const py::object& bias, const py::object& activation, const py::object& out,
               double alpha, double beta) {
  py::array a = as_ndarray(a_obj, "a"), b = as_ndarray(b_obj, "b");
  const DType ta = float_dtype(a, "a"), tb = float_dtype(b, "b");
  if (ta != tb)
    throw py::type_error("a and b must have the same dtype, got " + std::string(py::str(a.dtype())) +
                         " and " + std::string(py::str(b.dtype())));
  if (a.ndim() != 2) throw py::value_error("a must be 2-D, got shape " + shape_str(a));
  if (b.ndim() != 2) throw py::value_error("b must be 2-D, got shape " + shape_str(b));
  const Activation act = epilogue_from_name(activation);
  if (ta == DType::f32) return gemm_typed<float>(a, b, trans_a, trans_b, bias, act, out, alpha, beta);
  return gemm_typed<double>(a, b, trans_a, trans_b, bias, act, out, alpha, beta);
}

// ---------------------------------------------------------------------------------------------
// ISA control

std::vector<std::string> available_isas() {
  const char* names[8];
  const int n = mlpfast::available_isas(names, 8);
  return std::vector<std::string>(names, names + n);
}

void set_isa(const std::string& name) {
  if (!mlpfast::set_isa(name.c_str())) {
    std::string avail;
    for (const auto& s : available_isas()) avail += (avail.empty() ? "" : ", ") + s;
    throw py::value_error("ISA level '" + name + "' is unknown or not supported by this CPU; "
                          "available: " + avail);
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlpfast's C++ core: GEMM, training kernels, CPU dispatch (private; use mlpfast)";

  if (const char* forced = std::getenv("MLPFAST_ISA"); forced && *forced) {
    if (!mlpfast::set_isa(forced))
      throw py::import_error(std::string("MLPFAST_ISA=") + forced +
                             " is unknown or not supported by this CPU");
  }

  m.def("isa", [] { return std::string(mlpfast::active_isa()); },
        "Name of the instruction-set level the kernels run at.");
  m.def("available_isas", &available_isas,
        "Instruction-set levels this build has and this CPU supports, worst to best.");
  m.def("set_isa", &set_isa, py::arg("name"),
        "Select an instruction-set level (for tests and benchmarks).");
  m.def("max_threads", &mlpfast::max_threads, "Threads the kernels may use right now.");
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("bias") = py::none(),
        py::arg("activation") = py::none(), py::arg("out") = py::none(),
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        R"doc(op(a) @ op(b) * alpha + beta * out (+ bias, then activation).

op(x) is x.T when trans_x is set. a and b are float32 or float64 of the same dtype; the result
has their dtype. out, when given, must be C-contiguous, writeable, of shape (m, n).)doc");
}
