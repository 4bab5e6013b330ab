// Tests of ops/sparse/zero_skipping.hpp: zero-activation skipping (EIE) against the plain path.

#include <random>
#include <vector>

#include <tpp/ops/sparse/zero_skipping.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE_TEMPLATE("sparse: zero-skipping (EIE) equals the plain path on mostly-zero activations", P, approx::exact,
                   approx::bf16_rne, approx::mitchell<7>) {
  const all_formats f = formats_of(40, 64, {4, 4}, 21);
  std::mt19937 g(5);
  auto sparse_act = [&](std::size_t count) {  // about 70% zeros, signs of zero mixed
    auto v = test::make<float>(count, g());
    for (auto& x : v)
      if (g() % 10 < 7) x = g() % 2 ? 0.0f : -0.0f;
    return v;
  };
  for (const index_t n : {1, 3, 20}) {
    CAPTURE(n);
    const auto b = sparse_act(std::size_t(64 * n));
    const mat<const float> B{b.data(), 64, n, n};
    for (const sparse_params p : {sparse_params{1.0f, 0.0f, true}, sparse_params{-2.0f, 0.5f, true}}) {
      std::vector<float> c1(std::size_t(40 * n), 1.0f), c2 = c1;
      sparse_dense<P>(f.csr, B, view(c1.data(), 40, n), p);
      sparse_dense<P>(f.csr, B, view(c2.data(), 40, n), {p.alpha, p.beta, false});
      CHECK(c1 == c2);  // by value: only the sign of an exact-zero sum may differ
      sparse_dense<P>(f.codebook, B, view(c1.data(), 40, n), p);
      sparse_dense<P>(f.codebook, B, view(c2.data(), 40, n), {p.alpha, p.beta, false});
      CHECK(c1 == c2);
      // A (n, 64) W^T with W = S (40, 64)
      std::vector<float> d1(std::size_t(n * 40), 1.0f), d2 = d1;
      dense_sparse<P>(mat<const float>{b.data(), n, 64, 64}, f.bcsr, view(d1.data(), n, 40), p);
      dense_sparse<P>(mat<const float>{b.data(), n, 64, 64}, f.bcsr, view(d2.data(), n, 40), {p.alpha, p.beta, false});
      CHECK(d1 == d2);
    }
  }
}
