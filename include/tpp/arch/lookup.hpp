#pragma once
// row_lookup<N, A>: a table row of N floats (N a power of two, 1 <= N <= 256) held in registers and
// looked up by batches of indices: lane i = row[index[i]], every index in [0, N). The row is loaded once
// (construction) and looked up many times, which is what a lookup per broadcast operand value needs
// (DESIGN.md section 5: 10.4 G lookups/s per core against 2.8 G/s for vpgatherdd from a 64 KiB table).
//   AVX-512: N <= 16 one vpermps; N = 32 one vpermt2ps; N = 64 .. 256: one vpermt2ps per 32 entries and a
//            tree of masked blends on index bits 5, 6, 7.
//   other archs: a gather from the row in memory (arch/gather.hpp).
// Scalar twin: lookup_scalar(row, i) = row[i].

#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "gather.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

inline float lookup_scalar(const float* row, std::int32_t i) noexcept { return row[i]; }

template <int N, class A>
class row_lookup {
  static_assert(N >= 1 && N <= 256 && (N & (N - 1)) == 0, "tpp: row_lookup needs a power of two <= 256");
  using F = xsimd::batch<float, A>;
  using I = xsimd::batch<std::int32_t, A>;

 public:
  explicit row_lookup(const float* row) noexcept : row_(row) {
#if defined(__AVX512F__)
    if constexpr (avx512) {
      if constexpr (N < 16)
        t_[0] = _mm512_maskz_loadu_ps(__mmask16((1u << N) - 1u), row);
      else
#pragma GCC unroll 16
        for (int r = 0; r < regs; ++r) t_[r] = _mm512_loadu_ps(row + 16 * r);
    }
#endif
  }

  F operator()(I index) const noexcept {
#if defined(__AVX512F__)
    if constexpr (avx512) {
      const __m512i idx = index;
      if constexpr (N <= 16) {
        return _mm512_permutexvar_ps(idx, t_[0]);
      } else {
        __m512 part[regs / 2];
#pragma GCC unroll 8
        for (int p = 0; p < regs / 2; ++p) part[p] = _mm512_permutex2var_ps(t_[2 * p], idx, t_[2 * p + 1]);
        // combine pairs by index bit 5, then 6, then 7 (a counted loop: GCC can annotate it at any -O)
        constexpr int levels = regs >= 16 ? 3 : regs >= 8 ? 2 : regs >= 4 ? 1 : 0;
#pragma GCC unroll 3
        for (int level = 0; level < levels; ++level) {
          const int n = (regs / 2) >> level;
          const __mmask16 hi = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(1 << (5 + level)));
#pragma GCC unroll 4
          for (int p = 0; p < n / 2; ++p) part[p] = _mm512_mask_blend_ps(hi, part[2 * p], part[2 * p + 1]);
        }
        return part[0];
      }
    } else
#endif
    {
      return gather<A>(row_, index);
    }
  }

 private:
#if defined(__AVX512F__)
  static constexpr bool avx512 = std::is_base_of_v<xsimd::avx512f, A>;
  static constexpr int regs = N <= 16 ? 1 : N / 16;
  __m512 t_[avx512 ? regs : 1];
#endif
  const float* row_;
};

}  // namespace tpp::arch
