// arch/transpose.hpp and arch/vnni.hpp: every block transpose form this build has (a fixed ISA per tile
// size) and the VNNI-2 / VNNI-4 row packings at every arch this build runs equal their scalar twins bit for
// bit, on random bit patterns (NaN payloads included), with padded rows; nothing outside the block or the
// row is written.

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <tpp/arch/transpose.hpp>
#include <tpp/arch/vnni.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class U>
std::vector<U> random_words(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<U> v(n);
  for (auto& x : v) {
    const std::uint64_t r = g();
    std::memcpy(&x, &r, sizeof(U));
  }
  return v;
}

template <class U>
U guard() {
  U u;
  std::memset(&u, 0xa5, sizeof(U));
  return u;
}

// One B x B block at several lds: the instruction form and the twin write the same bytes everywhere.
template <class U, std::ptrdiff_t B>
void check_block() {
  CAPTURE(sizeof(U));
  CAPTURE(B);
  for (std::ptrdiff_t pad_in : {0, 1, 5})
    for (std::ptrdiff_t pad_out : {0, 3, 16}) {
      const std::ptrdiff_t ldi = B + pad_in, ldo = B + pad_out;
      const std::vector<U> in = random_words<U>(std::size_t(B * ldi), std::uint64_t(B * 100 + pad_in * 10 + pad_out));
      std::vector<U> a(std::size_t(B * ldo + 1), guard<U>()), b = a;
      tpp::arch::transpose_block<U, B>(in.data(), ldi, a.data(), ldo);
      tpp::arch::transpose_block_scalar<U, B>(in.data(), ldi, b.data(), ldo);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(U)) == 0);
      std::size_t bad = 0;
      for (std::ptrdiff_t j = 0; j < B; ++j)
        for (std::ptrdiff_t i = 0; i < ldo; ++i) {
          const U want = i < B ? in[std::size_t(i * ldi + j)] : guard<U>();
          bad += std::memcmp(&a[std::size_t(j * ldo + i)], &want, sizeof(U)) != 0;
        }
      CHECK(bad == 0);
    }
}

template <std::size_t S, std::ptrdiff_t B, class... U>
int check_native() {
  if constexpr (tpp::arch::transpose_block_native<S, B>) {
    (check_block<U, B>(), ...);
    return 1;
  }
  return 0;
}

template <int G, class A>
void check_vnni() {
  using U = tpp::arch::vnni_word<G>;
  constexpr std::ptrdiff_t W = std::ptrdiff_t(xsimd::batch<float, A>::size);
  for (std::ptrdiff_t n : {std::ptrdiff_t(0), std::ptrdiff_t(1), W - 1, W, W + 1, std::ptrdiff_t(15), std::ptrdiff_t(16),
                           std::ptrdiff_t(17), 3 * W + 5, std::ptrdiff_t(67)}) {
    for (int rows = 1; rows <= G; ++rows) {  // rows < G: the last group's padding
      CAPTURE(n);
      CAPTURE(rows);
      std::vector<std::vector<U>> x(G);
      const U* xp[G];
      for (int g = 0; g < G; ++g) {
        x[std::size_t(g)] = random_words<U>(std::size_t(n + 1), std::uint64_t(1000 * G + 10 * n + g));
        xp[g] = g < rows ? x[std::size_t(g)].data() : nullptr;
      }
      std::vector<U> a(std::size_t(G * n + 2), guard<U>()), b = a;
      tpp::arch::vnni_pack<G, A>(xp, a.data() + 1, n);
      tpp::arch::vnni_pack_scalar<G>(xp, b.data() + 1, n);
      CHECK(a == b);
      std::size_t bad = 0;
      for (std::ptrdiff_t j = 0; j < n; ++j)
        for (int g = 0; g < G; ++g) bad += a[std::size_t(1 + G * j + g)] != (g < rows ? x[std::size_t(g)][std::size_t(j)] : U{});
      CHECK(bad == 0);
      CHECK(a.front() == guard<U>());
      CHECK(a.back() == guard<U>());

      // Back: rows past `rows` are not written.
      std::vector<std::vector<U>> ya(G, std::vector<U>(std::size_t(n + 1), guard<U>())), yb = ya;
      U* pa[G];
      U* pb[G];
      for (int g = 0; g < G; ++g) {
        pa[g] = g < rows ? ya[std::size_t(g)].data() : nullptr;
        pb[g] = g < rows ? yb[std::size_t(g)].data() : nullptr;
      }
      tpp::arch::vnni_unpack<G, A>(a.data() + 1, pa, n);
      tpp::arch::vnni_unpack_scalar<G>(a.data() + 1, pb, n);
      CHECK(ya == yb);
      for (int g = 0; g < rows; ++g) {
        std::vector<U> want(x[std::size_t(g)].begin(), x[std::size_t(g)].begin() + n);
        want.push_back(guard<U>());
        CHECK(ya[std::size_t(g)] == want);
      }
    }
  }
}

}  // namespace

TEST_CASE("arch: block transposes equal their scalar twin, at every tile size this build has") {
  int forms = 0;
  forms += check_native<4, 16, float, std::uint32_t>();
  forms += check_native<4, 8, float, std::uint32_t>();
  forms += check_native<4, 4, float, std::uint32_t>();
  forms += check_native<2, 16, std::uint16_t>();
  forms += check_native<2, 8, std::uint16_t>();
  forms += check_native<1, 16, std::uint8_t>();
  // The twins themselves, at sizes no form has.
  check_block<float, 3>();
  check_block<std::uint8_t, 5>();
#if defined(__AVX512F__)
  CHECK(forms == 6);
#elif defined(__AVX__)
  CHECK(forms == 4);
#elif defined(__SSE2__) || defined(__ARM_NEON)
  CHECK(forms == 3);
#else
  CHECK(forms == 0);
#endif
}

TEST_CASE("arch: VNNI-2 and VNNI-4 row packing equals its scalar twin") {
  tpp::test::for_each_arch([](auto arch) {
    using A = decltype(arch);
    check_vnni<2, A>();
    check_vnni<4, A>();
  });
}
