// selfcheck.cpp: the core checked without Python, for builds where pytest cannot run (an aarch64
// cross build under qemu-aarch64, a new compiler). Prints one line per check, then PASS or FAIL;
// exits 1 on any failure.
//
//   1. gemm (every op(A)/op(B) combination, float and double, every ISA level this CPU runs)
//      against a naive triple loop, on shapes that are not multiples of any block size, with
//      K past one K block (KC = 256) and C large enough for the packed path; beta, bias and a
//      fused ReLU included. Bound: |C - C_ref| <= 4 k eps sum_p |a_ip b_pj| (+ the beta term).
//   2. one training step: train_epoch on a 3-4-1 tanh network, one batch of 5 samples, plain
//      SGD (no momentum, no L2), squared error, against back-propagation written out here by
//      hand in double: z1 = x W1 + b1, a1 = tanh(z1), p = a1 W2 + b2,
//      loss = 0.5 mean (p - y)^2, dp = (p - y) / n, dW2 = a1^T dp, db2 = sum dp,
//      dz1 = (dp W2^T) * (1 - a1^2), dW1 = x^T dz1, db1 = sum dz1; params -= lr * grad.
//
// Build: cmake -DMLPFAST_BUILD_SELFCHECK=ON (target mlpfast_selfcheck), or by hand (see
// .ci/portability.sh) from dispatch.cpp, network.cpp and the generic kernels.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "kernels.h"
#include "network.h"

namespace {

using mlpfast::Activation;
using mlpfast::index_t;

int g_failures = 0;

void report(bool ok, const char* what, const char* isa, double err) {
  std::printf("%-4s %-44s isa=%-8s max error/bound=%.3g\n", ok ? "ok" : "FAIL", what, isa, err);
  if (!ok) ++g_failures;
}

// Deterministic values in [-1, 1) (a 64-bit LCG; no <random>, whose output is not portable).
struct Lcg {
  std::uint64_t s;
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(s >> 11) / double(1ULL << 53) * 2.0 - 1.0;
  }
};

template <typename T>
std::vector<T> random_vector(std::size_t n, Lcg& rng) {
  std::vector<T> v(n);
  for (auto& x : v) x = T(rng.next());
  return v;
}

// Largest |C - C_ref| / bound over C, for one shape; > 1 is a failure.
template <typename T>
double gemm_error(bool ta, bool tb, index_t m, index_t n, index_t k, bool relu, Lcg& rng) {
  const index_t lda = ta ? m : k, ldb = tb ? k : n, ldc = n + 3;  // ldc > n: strided C
  auto a = random_vector<T>(std::size_t((ta ? k : m) * lda), rng);
  auto b = random_vector<T>(std::size_t((tb ? n : k) * ldb), rng);
  auto c = random_vector<T>(std::size_t(m * ldc), rng);
  auto bias = random_vector<T>(std::size_t(n), rng);
  const T alpha = T(0.75), beta = T(0.5);
  std::vector<T> c0 = c;
  mlpfast::kernels<T>().gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta,
                             c.data(), ldc, bias.data(),
                             relu ? Activation::relu : Activation::identity);
  const double eps = std::numeric_limits<T>::epsilon();
  double worst = 0;
  for (index_t i = 0; i < m; ++i) {
    for (index_t j = 0; j < n; ++j) {
      double acc = 0, mag = 0;
      for (index_t p = 0; p < k; ++p) {
        const double x = a[ta ? p * lda + i : i * lda + p], y = b[tb ? j * ldb + p : p * ldb + j];
        acc += x * y;
        mag += std::fabs(x * y);
      }
      double ref = double(alpha) * acc + double(beta) * c0[i * ldc + j] + double(bias[j]);
      if (relu && ref < 0) ref = 0;
      const double bound = 4 * double(k + 3) * eps * (mag + std::fabs(c0[i * ldc + j]) + 1) + 1e-300;
      const double err = std::fabs(double(c[i * ldc + j]) - ref) / bound;
      if (!(err <= worst)) worst = err;  // NaN propagates as a failure
    }
    for (index_t j = n; j < ldc; ++j)  // padding past n must be left alone
      if (c[i * ldc + j] != c0[i * ldc + j]) worst = std::numeric_limits<double>::infinity();
  }
  return worst;
}

template <typename T>
void check_gemm(const char* isa, const char* type) {
  struct Shape { index_t m, n, k; };
  const Shape shapes[] = {{1, 1, 1}, {7, 5, 3}, {13, 17, 29}, {1, 33, 300}, {31, 10, 257},
                          {150, 131, 270}, {97, 203, 61}};
  Lcg rng{42};
  for (int op = 0; op < 4; ++op) {
    const bool ta = op & 1, tb = op & 2;
    double worst = 0;
    for (const Shape& s : shapes) {
      const double e = gemm_error<T>(ta, tb, s.m, s.n, s.k, (s.m + s.n) % 2 == 0, rng);
      if (!(e <= worst)) worst = e;
    }
    char what[64];
    std::snprintf(what, sizeof what, "gemm %s%s %s vs naive loop (7 shapes)", ta ? "T" : "N",
                  tb ? "T" : "N", type);
    report(worst <= 1.0, what, isa, worst);
  }
}

// One SGD step of train_epoch against the hand-written back-propagation of the header.
template <typename T>
void check_train_step(const char* isa, const char* type) {
  const index_t units[] = {3, 4, 1}, n = 5;
  const double lr = 0.1;
  Lcg rng{7};
  auto X = random_vector<T>(n * 3, rng), Y = random_vector<T>(n, rng);
  // params = [W1 (3x4), W2 (4x1), b1 (4), b2 (1)]
  auto params = random_vector<T>(12 + 4 + 4 + 1, rng);
  const T* W1 = params.data(); const T* W2 = W1 + 12; const T* b1 = W2 + 4; const T* b2 = b1 + 4;

  std::vector<double> grad(params.size(), 0.0);
  double loss = 0;
  for (index_t s = 0; s < n; ++s) {
    double a1[4], p = b2[0];
    for (int j = 0; j < 4; ++j) {
      double z = b1[j];
      for (int i = 0; i < 3; ++i) z += double(X[s * 3 + i]) * W1[i * 4 + j];
      a1[j] = std::tanh(z);
      p += a1[j] * W2[j];
    }
    loss += 0.5 * (p - Y[s]) * (p - Y[s]) / n;
    const double dp = (p - Y[s]) / n;
    for (int j = 0; j < 4; ++j) {
      grad[12 + j] += a1[j] * dp;                            // dW2
      const double dz1 = dp * W2[j] * (1 - a1[j] * a1[j]);
      for (int i = 0; i < 3; ++i) grad[i * 4 + j] += X[s * 3 + i] * dz1;  // dW1
      grad[16 + j] += dz1;                                   // db1
    }
    grad[20] += dp;                                          // db2
  }
  std::vector<double> expected(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) expected[i] = params[i] - lr * grad[i];

  const mlpfast::NetSpec net{units, 2, Activation::tanh, mlpfast::Output::identity};
  std::vector<T> velocity(params.size(), T(0));
  const std::int64_t order[] = {0, 1, 2, 3, 4};
  mlpfast::TrainOptions opts;
  opts.solver = mlpfast::Solver::sgd;
  opts.learning_rate = lr;
  opts.momentum = 0.0;
  opts.nesterov = false;
  const double got_loss = mlpfast::train_epoch<T>(
      net, params.data(), velocity.data(), mlpfast::Strided<T>{X.data(), n, 3, 3, 1},
      mlpfast::Strided<T>{Y.data(), n, 1, 1, 1}, nullptr, 0, order, n, n, opts);

  const double tol = 64 * std::numeric_limits<T>::epsilon();
  double worst = std::fabs(got_loss - loss) / (tol * (std::fabs(loss) + 1));
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double e = std::fabs(double(params[i]) - expected[i]) / (tol * (std::fabs(expected[i]) + 1));
    if (!(e <= worst)) worst = e;
  }
  char what[64];
  std::snprintf(what, sizeof what, "train_epoch: one SGD step %s vs hand backprop", type);
  report(worst <= 1.0, what, isa, worst);
}

}  // namespace

int main() {
  const char* names[8];
  const int count = mlpfast::available_isas(names, 8);
  std::printf("mlpfast self-check: %d ISA level(s) on this CPU, best %s\n", count,
              count ? names[count - 1] : "none");
  for (int i = 0; i < count; ++i) {
    if (!mlpfast::set_isa(names[i])) {
      report(false, "set_isa", names[i], 0);
      continue;
    }
    check_gemm<float>(names[i], "float32");
    check_gemm<double>(names[i], "float64");
    check_train_step<float>(names[i], "float32");
    check_train_step<double>(names[i], "float64");
  }
  if (count == 0) ++g_failures;
  std::printf("%s: %d failure(s)\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}
