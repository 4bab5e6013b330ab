#pragma once
// Small OpenMP helpers. tpp's 2D primitives are single-threaded; the dnn/ layer and large GEMMs use these.
// Without OpenMP everything runs on one thread.

#include <algorithm>

#include "types.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tpp {

inline int max_threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline bool in_parallel() noexcept {
#if defined(_OPENMP)
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// The half-open share [begin, end) of n items for part `part` of `parts`, balanced to within one item.
struct range {
  index_t begin, end;
};
constexpr range split(index_t n, index_t parts, index_t part) noexcept {
  const index_t q = n / parts, r = n % parts;
  const index_t b = part * q + std::min(part, r);
  return {b, b + q + (part < r ? 1 : 0)};
}

// Runs f(begin, end) over a static partition of [0, n) across the OpenMP team (one call per thread).
// Nested inside a parallel region it runs serially on the calling thread.
template <class F>
void parallel_for(index_t n, F&& f) {
#if defined(_OPENMP)
  if (n > 1 && !in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel
    {
      const range r = split(n, omp_get_num_threads(), omp_get_thread_num());
      if (r.begin < r.end) f(r.begin, r.end);
    }
    return;
  }
#endif
  if (n > 0) f(index_t{0}, n);
}

}  // namespace tpp
