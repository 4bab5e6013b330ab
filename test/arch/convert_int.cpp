// arch/convert.hpp, integer part: the int8 / uint8 / int16 widening loads and the int32 narrowing stores
// equal their scalar twins bit for bit at every arch this build runs, on every 8-bit pattern and on 16-bit
// patterns spanning the range, and touch exactly W elements.

#include <cstring>

#include <tpp/arch/convert.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A, class T>
void check_widen_narrow() {
  using I = xsimd::batch<std::int32_t, A>;
  constexpr std::size_t W = I::size;
  std::vector<T> src(65536 + W);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = T(i * (sizeof(T) == 1 ? 1 : 7));
  std::size_t bad = 0;
  const std::size_t n = sizeof(T) == 1 ? 256 : 65536;
  for (std::size_t i = 0; i < n; i += W) {
    alignas(64) std::int32_t a[64], b[64];
    const I v = tpp::arch::widen_int<A>(src.data() + i);
    v.store_aligned(a);
    tpp::arch::widen_int_scalar<A>(src.data() + i).store_aligned(b);
    bad += std::memcmp(a, b, W * sizeof(std::int32_t)) != 0;
    for (std::size_t k = 0; k < W; ++k) bad += a[k] != std::int32_t(src[i + k]);
    // and back: W + 2 guard elements around the row stay as they were
    std::vector<T> x(W + 2, T(0x5a)), y(W + 2, T(0x5a));
    tpp::arch::store_narrowed<A>(x.data() + 1, v);
    tpp::arch::store_narrowed_scalar<A>(y.data() + 1, v);
    bad += x != y;
    bad += x[0] != T(0x5a) || x[W + 1] != T(0x5a);
    for (std::size_t k = 0; k < W; ++k) bad += x[k + 1] != src[i + k];
  }
  CHECK(bad == 0);
}

template <class A>
void check_convert_int() {
  check_widen_narrow<A, std::int8_t>();
  check_widen_narrow<A, std::uint8_t>();
  check_widen_narrow<A, std::int16_t>();
}

}  // namespace

TEST_CASE("arch: widen_int and store_narrowed equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_convert_int<decltype(arch)>(); });
}
