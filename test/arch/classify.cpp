// arch/classify.hpp: finite_else (vfpclassps and a masked move on AVX-512DQ) equals its scalar twin bit for
// bit at every arch this build runs, on any bit pattern (NaNs with payloads and signs, infinities,
// denormals, zeros).

#include <cstring>

#include <tpp/arch/classify.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_classify() {
  using F = xsimd::batch<float, A>;
  constexpr std::size_t W = F::size;
  std::vector<float> v = tpp::test::any_bits(4096, 5);
  const std::vector<float> q = tpp::test::any_bits(4096, 6);
  const std::vector<float> sp = tpp::test::special_values();
  for (std::size_t k = 0; k < sp.size(); ++k) v[5 * k] = sp[k];
  v[1] = tpp::test::from_bits(0xff800001u);  // a signalling NaN, negative
  v[2] = tpp::test::from_bits(0xffc01234u);  // a quiet NaN with a payload, negative
  std::size_t bad = 0;
  for (std::size_t i = 0; i + W <= v.size(); i += W) {
    alignas(64) float a[64], b[64];
    const F fq = F::load_unaligned(q.data() + i), fv = F::load_unaligned(v.data() + i);
    tpp::arch::finite_else<A>(fq, fv).store_aligned(a);
    tpp::arch::finite_else_scalar<A>(fq, fv).store_aligned(b);
    bad += std::memcmp(a, b, W * sizeof(float)) != 0;
    for (std::size_t k = 0; k < W; ++k)
      bad += tpp::test::bits(a[k]) != tpp::test::bits(std::isfinite(v[i + k]) ? q[i + k] : v[i + k]);
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: finite_else equals its scalar twin") {
  tpp::test::for_each_arch([](auto arch) { check_classify<decltype(arch)>(); });
}
