#pragma once
// Reductions of a 2D view to a row or a column vector.
//
// Directions (reduce_dir):
//   each_row: every row of in (M, N) reduces to one value     -> out (M, 1):  out(i, 0) = R_j in(i, j)
//   each_col: every column of in (M, N) reduces to one value  -> out (1, N):  out(0, j) = R_i in(i, j)
//
// Kinds (reduce_kind, the first template parameter), R over the n terms x of a row or column:
//   sum             Σ x
//   max, min        max x, min x
//   absmax          max |x|                     (a magnitude: never negative)
//   sum_sq          Σ Policy::mul(x, x)
//   sum_and_sum_sq  Σ x and Σ Policy::mul(x, x) in one pass, to two outputs of the same shape (for norms)
// The only products are the squares x*x of sum_sq / sum_and_sum_sq: they go through Policy (scalar mul in
// scalar code, the bit-identical SIMD mul in vector code). For approx::exact the compiler may fuse that
// product into the accumulating add (FMA), which only drops a rounding.
//
// Types: in fp32 or bf16 (mat<const T> or mat<T>), out fp32 or bf16; computation and accumulation in fp32,
// a bf16 out is rounded once at the end (to nearest even). accumulate = true combines the result with what
// out holds (out + r for the sums, max/min(out, r) for max/min/absmax), the old value read in out's type.
// Empty reductions give the identity: 0 for the sums and absmax, -Inf for max, +Inf for min.
//
// Accuracy of the sums. Summation is blocked pairwise:
//   each_row: S = 16 steps into each of U = 4 vector accumulators (W lanes) form a leaf of 64 W terms;
//             leaves combine pairwise (binary-counter cascade), the U accumulators and W lanes by trees.
//             A last partial vector is the full vector ending at the row's end with the lanes already
//             summed masked off (nothing outside the row is read); rows shorter than W run in order.
//   each_col: 8 rows at a time stream into a row of fp32 partial states (one lane per column), B = 16 rows
//             per leaf; leaves combine pairwise. Columns go in chunks of 2048 so the partial rows stay in
//             L1/L2; the leaf levels live in the call's scratch memory (K outputs x 2048 floats x
//             (log2(M / 16) + 2) levels at most; workspace_bytes()).
// Every term passes through at most d = 24 + ceil(log2 n) roundings, so for n terms t_i
//   |computed - Σ t_i| <= γ_d Σ |t_i|,   γ_d = d u / (1 - d u),  u = 2^-24,
// (t_i = Policy::mul(x_i, x_i) for the squares; with accumulate the old out value is one more term), plus
// the final rounding of a bf16 out. (The scheme needs about 17 + ceil(log2 n); the rest is slack.)
//
// Special values. Sums follow IEEE arithmetic (Inf, NaN propagate; a NaN's payload is unspecified).
// max / min / absmax: NaN propagates: if any term (or the old out value with accumulate) is NaN the result
// is the quiet NaN 0x7fc00000, identically in SIMD and scalar code; otherwise the result is exact. Which of
// +0 / -0 max and min return when both occur is unspecified.
//
// Dispatch: the kind is a template parameter, so each kernel is compiled for its kind (no per-element
// branching). Vector loops at simd::default_arch with partial-vector tails; with TPP_NO_SIMD the same
// blocked algorithms run on scalar lanes (W = 1).
//
// API (Policy = approx::exact, constrained by approx::multiplier; the kernel object validates its views):
//   reduce_kernel<K, Policy, TI, TO> k(rows, cols, reduce_params{dir, accumulate});
//   k(in, out);                          // every kind but sum_and_sum_sq
//   k(in, sum, sum_sq);                  // sum_and_sum_sq
//   k.workspace_bytes()                  // scratch a call takes (each_col only); pass a tpp::workspace of
//                                        // that size as the call's last argument, or none (the thread's arena)
//   reduce<K, Policy>(in, out, params);  reduce<reduce_kind::sum_and_sum_sq, Policy>(in, sum, sum_sq, params);
//   reduce_sum_depth(n)                  // the d of the accuracy bound above, for tests and callers
// No output may share an element with in, nor sum with sum_sq (tpp::error). A kernel checks the policy
// (approx::check_policy) once per process and policy, and only for the kinds that multiply.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../arch/registers.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/lanes.hpp"
#include "../core/mat.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"
#include "../core/workspace.hpp"

namespace tpp {

enum class reduce_kind : std::uint8_t { sum, max, min, absmax, sum_sq, sum_and_sum_sq };
enum class reduce_dir { each_row, each_col };

constexpr std::string_view name(reduce_kind k) noexcept {
  switch (k) {
    case reduce_kind::sum: return "sum";
    case reduce_kind::max: return "max";
    case reduce_kind::min: return "min";
    case reduce_kind::absmax: return "absmax";
    case reduce_kind::sum_sq: return "sum_sq";
    case reduce_kind::sum_and_sum_sq: return "sum_and_sum_sq";
  }
  return "invalid";
}

struct reduce_params {
  reduce_dir dir = reduce_dir::each_row;
  bool accumulate = false;  // combine with the values already in out
};

// d of the documented bound γ_d Σ|t_i| for a sum of n terms.
constexpr index_t reduce_sum_depth(index_t n) noexcept {
  index_t l = 0;
  while (l < 63 && (index_t(1) << l) < n) ++l;
  return 24 + l;
}

namespace detail::reduce_impl {

inline constexpr float qnan = std::numeric_limits<float>::quiet_NaN();  // 0x7fc00000
inline constexpr float inf = std::numeric_limits<float>::infinity();

// ---- state functions: state = `outs` lanes; init / step (one term) / merge (two partial states) -------
// One per kind (op_for<K, P>), compile-time: the kernels below are instantiated per kind.

struct op_sum {
  static constexpr int outs = 1;
  static constexpr bool additive = true;
  template <class V>
  static void init(V* s) noexcept {
    s[0] = V(0.0f);
  }
  template <class V>
  static void step(V* s, V x) noexcept {
    s[0] = s[0] + x;
  }
  template <class V>
  static void merge(V* s, const V* t) noexcept {
    s[0] = s[0] + t[0];
  }
};

template <class P>
struct op_sum_sq : op_sum {  // (op_sum's init and merge)
  template <class V>
  static void step(V* s, V x) noexcept {
    s[0] = s[0] + P::mul(x, x);
  }
};

template <class P>
struct op_sum_and_sum_sq {
  static constexpr int outs = 2;
  static constexpr bool additive = true;
  template <class V>
  static void init(V* s) noexcept {
    s[0] = V(0.0f);
    s[1] = V(0.0f);
  }
  template <class V>
  static void step(V* s, V x) noexcept {
    s[0] = s[0] + x;
    s[1] = s[1] + P::mul(x, x);
  }
  template <class V>
  static void merge(V* s, const V* t) noexcept {
    s[0] = s[0] + t[0];
    s[1] = s[1] + t[1];
  }
};

// max / min / absmax: a NaN term makes the state the canonical qNaN, which then sticks (max_second_on_nan(x, m)
// keeps a NaN m).
template <bool is_max, bool is_abs>
struct op_extremum {
  static constexpr int outs = 1;
  static constexpr bool additive = false;
  template <class V>
  static void init(V* s) noexcept {
    s[0] = V(is_abs ? 0.0f : (is_max ? -inf : inf));
  }
  template <class V>
  static V pick(V x, V m) noexcept {
    if constexpr (is_max)
      return tpp::lanes::select(tpp::lanes::is_nan(x), V(qnan), tpp::lanes::max_second_on_nan(x, m));
    else
      return tpp::lanes::select(tpp::lanes::is_nan(x), V(qnan), tpp::lanes::min_second_on_nan(x, m));
  }
  template <class V>
  static void step(V* s, V x) noexcept {
    if constexpr (is_abs) x = tpp::lanes::abs(x);
    s[0] = pick(x, s[0]);
  }
  template <class V>
  static void merge(V* s, const V* t) noexcept {
    s[0] = pick(t[0], s[0]);
  }
};
using op_max = op_extremum<true, false>;
using op_min = op_extremum<false, false>;
using op_absmax = op_extremum<true, true>;

// s = init, then merge(old): turns an old out value into a state (canonicalises a NaN for max/min).
template <class Op, class V>
void state_from(V* s, const V* old) noexcept {
  Op::init(s);
  Op::merge(s, old);
}

// ---- each_row -----------------------------------------------------------------------------------------

// Pairwise (binary-counter) combination of leaf states held in registers / on the stack.
template <class Op, class V>
struct lane_cascade {
  static constexpr int K = Op::outs;
  V level[64][K];
  std::uint64_t count = 0;

  void push(V* t) noexcept {
    int l = 0;
    for (; (count >> l) & 1u; ++l) Op::merge(t, level[l]);
    for (int k = 0; k < K; ++k) level[l][k] = t[k];
    ++count;
  }
  void result(V* r) const noexcept {
    Op::init(r);
    for (int l = 0; (count >> l) != 0; ++l)
      if ((count >> l) & 1u) Op::merge(r, level[l]);
  }
};

// r[k] = the merge of the lanes of v[k]: a tree, halving the batch width each level (W - 1 merges).
template <class Op, class A>
void horizontal(const xsimd::batch<float, A>* v, float* r) noexcept {
  constexpr int K = Op::outs;
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  using H = arch::half_arch<A>;
  alignas(64) float lane[K][W];
  for (int k = 0; k < K; ++k) v[k].store_aligned(lane[k]);
  if constexpr (!std::is_void_v<H>) {
    using HB = xsimd::batch<float, H>;
    static_assert(HB::size * 2 == W);
    HB lo[K], hi[K];
    for (int k = 0; k < K; ++k) {
      lo[k] = HB::load_aligned(lane[k]);
      hi[k] = HB::load_aligned(lane[k] + W / 2);
    }
    Op::merge(lo, hi);
    horizontal<Op, H>(lo, r);
  } else {
    for (std::size_t h = W / 2; h >= 1; h /= 2)
      for (std::size_t i = 0; i < h; ++i) {
        float s[K], t[K];
        for (int k = 0; k < K; ++k) {
          s[k] = lane[k][i];
          t[k] = lane[k][i + h];
        }
        Op::merge(s, t);
        for (int k = 0; k < K; ++k) lane[k][i] = s[k];
      }
    for (int k = 0; k < K; ++k) r[k] = lane[k][0];
  }
}

constexpr index_t row_accumulators = 4, row_steps = 16;  // U and S of the doc block

// Over x[j, n) with n - j at most one leaf (S U W elements) and n >= W: U accumulators, combined into
// tot. A last partial vector is the full vector ending at n with the lanes already seen masked off.
template <class Op, class V, class T>
[[gnu::always_inline]] inline void row_leaf(const T* x, index_t j, index_t n, V* tot) noexcept {
  constexpr int K = Op::outs;
  constexpr index_t U = row_accumulators, W = tpp::lanes::width<V>, step = U * W;
  static_assert(U == 4);
  V acc[U][K];
  for (index_t u = 0; u < U; ++u) Op::init(acc[u]);
  for (; j + step <= n; j += step)
    for (index_t u = 0; u < U; ++u) Op::step(acc[u], tpp::lanes::load<V>(x + j + u * W));
  index_t u = 0;
  for (; j + W <= n; j += W) Op::step(acc[u++], tpp::lanes::load<V>(x + j));
  if constexpr (W > 1) {
    if (j < n) {
      V t[K];
      for (int k = 0; k < K; ++k) t[k] = acc[u][k];
      Op::step(t, tpp::lanes::load<V>(x + n - W));
      const auto seen = tpp::lanes::first_n<V>(W - (n - j));  // lanes of x[n - W, j): already summed
      for (int k = 0; k < K; ++k) acc[u][k] = tpp::lanes::select(seen, acc[u][k], t[k]);
    }
  }
  Op::merge(acc[0], acc[1]);
  Op::merge(acc[2], acc[3]);
  Op::merge(acc[0], acc[2]);
  for (int k = 0; k < K; ++k) tot[k] = acc[0][k];
}

// Rows longer than one leaf: full leaves of S steps per accumulator, combined pairwise.
template <class Op, class V, class T>
[[gnu::noinline]] void long_row(const T* x, index_t n, V* tot) noexcept {
  constexpr index_t U = row_accumulators, W = tpp::lanes::width<V>, leaf = row_steps * U * W;
  lane_cascade<Op, V> c;
  V t[Op::outs];
  index_t j = 0;
  for (; j + leaf <= n; j += leaf) {
    row_leaf<Op, V>(x, j, j + leaf, t);
    c.push(t);
  }
  if (j < n) {
    row_leaf<Op, V>(x, j, n, t);
    c.push(t);
  }
  c.result(tot);
}

// r[k] = the reduction of x[0, n) for output k.
template <class Op, class V, class T>
void reduce_row(const T* x, index_t n, float* r) noexcept {
  constexpr int K = Op::outs;
  constexpr index_t W = tpp::lanes::width<V>, leaf = row_steps * row_accumulators * W;
  if (W > 1 && n < W) {  // shorter than a vector: scalar, in order
    float s[K];
    Op::init(s);
    for (index_t j = 0; j < n; ++j) Op::step(s, tpp::lanes::load<float>(x + j));
    for (int k = 0; k < K; ++k) r[k] = s[k];
    return;
  }
  V tot[K];
  if (n <= leaf)
    row_leaf<Op, V>(x, 0, n, tot);
  else
    long_row<Op, V>(x, n, tot);
  if constexpr (W == 1) {
    for (int k = 0; k < K; ++k) r[k] = tot[k];
  } else if constexpr (Op::additive) {
    for (int k = 0; k < K; ++k) r[k] = tpp::lanes::hsum(tot[k]);
  } else {
    horizontal<Op>(tot, r);
  }
}

template <class Op, class V, class T, class TO>
void reduce_each_row(mat<const T> in, mat<TO> const* out, bool accumulate) {
  constexpr int K = Op::outs;
  for (index_t i = 0; i < in.rows; ++i) {
    float r[K];
    reduce_row<Op, V>(in.row(i), in.cols, r);
    if (accumulate) {
      float old[K], s[K];
      for (int k = 0; k < K; ++k) old[k] = to_float(out[k](i, 0));
      state_from<Op>(s, old);
      Op::merge(s, r);
      for (int k = 0; k < K; ++k) r[k] = s[k];
    }
    for (int k = 0; k < K; ++k) out[k](i, 0) = from_float<TO>(r[k]);
  }
}

// ---- each_col -----------------------------------------------------------------------------------------

enum class init_mode { load, identity, from_old };

// acc[k][0, n) (op-state rows) combined with G input rows x[g][0, n): acc = acc (+) x[0] (+) ... (+) x[G-1].
// init: load acc as it is, start from the identity, or take acc as old out values (state_from).
template <class Op, class V, int G, class T>
void col_group(const T* const* x, float* const* acc, index_t n, init_mode init) noexcept {
  constexpr int K = Op::outs;
  constexpr index_t W = tpp::lanes::width<V>;
  index_t j = 0;
  for (; j + W <= n; j += W) {
    V a[K];
    if (init == init_mode::identity) {
      Op::init(a);
    } else {
      for (int k = 0; k < K; ++k) a[k] = tpp::lanes::load<V>(acc[k] + j);
      if (init == init_mode::from_old) {
        V old[K];
        for (int k = 0; k < K; ++k) old[k] = a[k];
        state_from<Op>(a, old);
      }
    }
    for (int g = 0; g < G; ++g) Op::step(a, tpp::lanes::load<V>(x[g] + j));
    for (int k = 0; k < K; ++k) tpp::lanes::store(acc[k] + j, a[k]);
  }
  if constexpr (W > 1) {
    if (j < n) {  // column tail: the same lane-wise arithmetic on scalars
      const T* xt[G];
      float* at[K];
      for (int g = 0; g < G; ++g) xt[g] = x[g] + j;
      for (int k = 0; k < K; ++k) at[k] = acc[k] + j;
      col_group<Op, float, G>(xt, at, n - j, init);
    }
  }
}

// Rows [r0, r1) of in, columns [c0, c0 + n), into the state rows acc. With no rows, identity init writes
// the identity (load / from_old leave acc unchanged: from_old only matters with rows to combine).
template <class Op, class V, class T>
void col_leaf(mat<const T> in, index_t c0, index_t n, index_t r0, index_t r1, float* const* acc,
              init_mode init) noexcept {
  if (r0 == r1) {
    if (init == init_mode::identity) {
      for (int k = 0; k < Op::outs; ++k) {
        float id[Op::outs];
        Op::init(id);
        std::fill(acc[k], acc[k] + n, id[k]);
      }
    }
    return;
  }
  index_t r = r0;
  for (; r + 8 <= r1; r += 8) {  // 8 rows per pass over the state row (4 measured slower in L2)
    const T* x[8];
    for (index_t g = 0; g < 8; ++g) x[g] = in.row(r + g) + c0;
    col_group<Op, V, 8>(x, acc, n, init);
    init = init_mode::load;
  }
  if (r + 4 <= r1) {
    const T* x[4] = {in.row(r) + c0, in.row(r + 1) + c0, in.row(r + 2) + c0, in.row(r + 3) + c0};
    col_group<Op, V, 4>(x, acc, n, init);
    init = init_mode::load;
    r += 4;
  }
  const T* x[3] = {};
  for (index_t g = 0; g < r1 - r; ++g) x[g] = in.row(r + g) + c0;
  switch (r1 - r) {
    case 3: col_group<Op, V, 3>(x, acc, n, init); break;
    case 2: col_group<Op, V, 2>(x, acc, n, init); break;
    case 1: col_group<Op, V, 1>(x, acc, n, init); break;
    default: break;
  }
}

// acc[k] (+)= t[k] over n columns.
template <class Op, class V>
void merge_rows(float* const* acc, float* const* t, index_t n) noexcept {
  constexpr int K = Op::outs;
  constexpr index_t W = tpp::lanes::width<V>;
  index_t j = 0;
  for (; j + W <= n; j += W) {
    V a[K], b[K];
    for (int k = 0; k < K; ++k) {
      a[k] = tpp::lanes::load<V>(acc[k] + j);
      b[k] = tpp::lanes::load<V>(t[k] + j);
    }
    Op::merge(a, b);
    for (int k = 0; k < K; ++k) tpp::lanes::store(acc[k] + j, a[k]);
  }
  for (; j < n; ++j) {
    float a[K], b[K];
    for (int k = 0; k < K; ++k) {
      a[k] = acc[k][j];
      b[k] = t[k][j];
    }
    Op::merge(a, b);
    for (int k = 0; k < K; ++k) acc[k][j] = a[k];
  }
}

// out[k](0, c0 + j) = acc[k][j] (+) (accumulate ? old out : nothing), converted to TO.
template <class Op, class V, class TO>
void store_cols(float* const* acc, mat<TO> const* out, index_t c0, index_t n, bool accumulate) noexcept {
  constexpr int K = Op::outs;
  constexpr index_t W = tpp::lanes::width<V>;
  index_t j = 0;
  for (; j + W <= n; j += W) {
    V a[K];
    for (int k = 0; k < K; ++k) a[k] = tpp::lanes::load<V>(acc[k] + j);
    if (accumulate) {
      V old[K], s[K];
      for (int k = 0; k < K; ++k) old[k] = tpp::lanes::load<V>(out[k].data + c0 + j);
      state_from<Op>(s, old);
      Op::merge(s, a);
      for (int k = 0; k < K; ++k) a[k] = s[k];
    }
    for (int k = 0; k < K; ++k) tpp::lanes::store(out[k].data + c0 + j, a[k]);
  }
  if constexpr (W > 1) {
    if (j < n) {
      float* at[K];
      for (int k = 0; k < K; ++k) at[k] = acc[k] + j;
      store_cols<Op, float>(at, out, c0 + j, n - j, accumulate);
    }
  }
}

constexpr index_t col_chunk = 2048, col_leaf_rows = 16;

// The leaves of an each_col reduction over M rows (the extremes take all rows as one).
template <class Op>
constexpr index_t col_leaves(index_t M) noexcept {
  return Op::additive ? (M + col_leaf_rows - 1) / col_leaf_rows : (M > 0 ? 1 : 0);
}

// The floats of fp32 scratch an each_col reduction of (M, N) into TO takes: K state rows of col_chunk
// floats per level (one leaf: one level, none when it goes straight into a float out).
template <class Op, class TO>
constexpr std::size_t col_scratch_floats(index_t M, index_t N) noexcept {
  const index_t leaves = col_leaves<Op>(M);
  if (N == 0 || (leaves <= 1 && std::is_same_v<TO, float>)) return 0;
  const int levels = leaves <= 1 ? 1 : int(std::bit_width(std::uint64_t(leaves))) + 1;
  return std::size_t(Op::outs) * std::size_t(col_chunk) * std::size_t(levels);
}

template <class Op, class V, class T, class TO>
void reduce_each_col(mat<const T> in, mat<TO> const* out, bool accumulate, workspace ws) {
  constexpr int K = Op::outs;
  constexpr index_t chunk = col_chunk, leaf_rows = col_leaf_rows;
  const index_t M = in.rows, N = in.cols;
  const index_t leaves = col_leaves<Op>(M);
  if (N == 0) return;
  if constexpr (std::is_same_v<TO, float>) {
    if (leaves <= 1) {  // one leaf, straight into out
      for (index_t c0 = 0; c0 < N; c0 += chunk) {
        float* acc[K];
        for (int k = 0; k < K; ++k) acc[k] = out[k].data + c0;
        col_leaf<Op, V>(in, c0, std::min(chunk, N - c0), 0, M, acc, accumulate ? init_mode::from_old : init_mode::identity);
      }
      return;
    }
  }
  scratch s(ws, "reduce");
  float* const base = s.take<float>(col_scratch_floats<Op, TO>(M, N));
  for (index_t c0 = 0; c0 < N; c0 += chunk) {
    const index_t n = std::min(chunk, N - c0);
    if (leaves <= 1) {  // one leaf through fp32 scratch
      float* acc[K];
      for (int k = 0; k < K; ++k) acc[k] = base + k * chunk;
      col_leaf<Op, V>(in, c0, n, 0, M, acc, init_mode::identity);
      store_cols<Op, V>(acc, out, c0, n, accumulate);
      continue;
    }
    // Pairwise over leaves of leaf_rows rows: level l holds the sum of 2^l leaves; bit l of count says
    // whether it is occupied. L levels + 1 buffer for the leaf being formed, each K rows of chunk floats.
    const int L = int(std::bit_width(std::uint64_t(leaves)));
    float* level[64];
    for (int l = 0; l <= L; ++l) level[l] = base + std::size_t(l) * K * chunk;
    float* t = level[L];
    std::uint64_t count = 0;
    for (index_t r0 = 0; r0 < M; r0 += leaf_rows) {
      float* tk[K];
      for (int k = 0; k < K; ++k) tk[k] = t + k * chunk;
      col_leaf<Op, V>(in, c0, n, r0, std::min(M, r0 + leaf_rows), tk, init_mode::identity);
      int l = 0;
      for (; (count >> l) & 1u; ++l) {
        float* lk[K];
        for (int k = 0; k < K; ++k) lk[k] = level[l] + k * chunk;
        merge_rows<Op, V>(tk, lk, n);
      }
      std::swap(t, level[l]);  // level l was free; its buffer becomes the next leaf's
      ++count;
    }
    float* res = nullptr;
    for (int l = 0; l < 64; ++l) {
      if (!((count >> l) & 1u)) continue;
      if (!res) {
        res = level[l];
        continue;
      }
      float *rk[K], *lk[K];
      for (int k = 0; k < K; ++k) {
        rk[k] = res + k * chunk;
        lk[k] = level[l] + k * chunk;
      }
      merge_rows<Op, V>(rk, lk, n);
    }
    float* rk[K];
    for (int k = 0; k < K; ++k) rk[k] = res + k * chunk;
    store_cols<Op, V>(rk, out, c0, n, accumulate);
  }
}

template <class Op, class T, class TO>
void run(mat<const T> in, mat<TO> const* out, reduce_params p, workspace ws) {
  using V = simd::lane;
  if (p.dir == reduce_dir::each_row)
    reduce_each_row<Op, V>(in, out, p.accumulate);
  else
    reduce_each_col<Op, V>(in, out, p.accumulate, ws);
}

// The state functions of kind K.
template <reduce_kind K, class P>
auto op_of() noexcept {
  if constexpr (K == reduce_kind::sum) return op_sum{};
  else if constexpr (K == reduce_kind::max) return op_max{};
  else if constexpr (K == reduce_kind::min) return op_min{};
  else if constexpr (K == reduce_kind::absmax) return op_absmax{};
  else if constexpr (K == reduce_kind::sum_sq) return op_sum_sq<P>{};
  else return op_sum_and_sum_sq<P>{};
}
template <reduce_kind K, class P>
using op_for = decltype(op_of<K, P>());

}  // namespace detail::reduce_impl

namespace detail {
template <reduce_kind K>
concept reduce_kind_value = K <= reduce_kind::sum_and_sum_sq;
}  // namespace detail

// A reduction compiled for one (kind, Policy, in type, out type) and made for one shape and direction.
// TI, TO: float or bf16 (TI may be given const-qualified).
template <reduce_kind K, class Policy = approx::exact, class TI = float, class TO = float>
  requires detail::reduce_kind_value<K> && approx::multiplier<Policy>
class reduce_kernel {
 public:
  using in_type = std::remove_const_t<TI>;
  using out_type = TO;
  static_assert(std::is_same_v<in_type, float> || std::is_same_v<in_type, bf16>, "tpp: reduce input must be float or bf16");
  static_assert(std::is_same_v<TO, float> || std::is_same_v<TO, bf16>, "tpp: reduce output must be float or bf16");

  reduce_kernel(index_t rows, index_t cols, reduce_params p = {}) : rows_(rows), cols_(cols), p_(p) {
    detail::check_sizes("reduce", rows, cols);
    detail::require(p.dir == reduce_dir::each_row || p.dir == reduce_dir::each_col, "reduce", "params.dir",
                    "is not a reduce_dir");
    if constexpr (K == reduce_kind::sum_sq || K == reduce_kind::sum_and_sum_sq) approx::check_policy<Policy>();
  }

  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  reduce_params params() const noexcept { return p_; }
  // The shape of each output: (rows, 1) for each_row, (1, cols) for each_col.
  index_t out_rows() const noexcept { return p_.dir == reduce_dir::each_row ? rows_ : 1; }
  index_t out_cols() const noexcept { return p_.dir == reduce_dir::each_row ? 1 : cols_; }

  // The bytes of a tpp::workspace a call takes (0: none).
  std::size_t workspace_bytes() const noexcept {
    if (p_.dir == reduce_dir::each_row) return 0;
    return scratch_size().take<float>(detail::reduce_impl::col_scratch_floats<op, TO>(rows_, cols_)).bytes();
  }

  // Every kind but sum_and_sum_sq: out (out_rows(), out_cols()).
  void operator()(mat<const in_type> in, mat<TO> out, workspace ws = {}) const
    requires(K != reduce_kind::sum_and_sum_sq)
  {
    check_in(in);
    check_out(out, "out");
    detail::require(!detail::views_overlap(out, in), "reduce", "out", "overlaps in");
    detail::reduce_impl::run<op>(in, &out, p_, ws);
  }

  // sum_and_sum_sq: Σ x into sum, Σ Policy::mul(x, x) into sum_sq, one pass.
  void operator()(mat<const in_type> in, mat<TO> sum, mat<TO> sum_sq, workspace ws = {}) const
    requires(K == reduce_kind::sum_and_sum_sq)
  {
    check_in(in);
    check_out(sum, "sum");
    check_out(sum_sq, "sum_sq");
    detail::require(!detail::views_overlap(sum, in), "reduce", "sum", "overlaps in");
    detail::require(!detail::views_overlap(sum_sq, in), "reduce", "sum_sq", "overlaps in");
    detail::require(!detail::views_overlap(sum_sq, sum), "reduce", "sum_sq", "overlaps sum");
    const mat<TO> outs[2] = {sum, sum_sq};
    detail::reduce_impl::run<op>(in, outs, p_, ws);
  }

 private:
  using op = detail::reduce_impl::op_for<K, Policy>;

  void check_in(const mat<const in_type>& in) const {
    detail::check_mat(in, "reduce", "in");
    detail::check_shape(in, rows_, cols_, "reduce", "in", "the kernel's");
  }
  void check_out(const mat<TO>& out, const char* name) const {
    detail::check_mat(out, "reduce", name);
    detail::check_shape(out, out_rows(), out_cols(), "reduce", name,
                        p_.dir == reduce_dir::each_row ? "each_row's (rows x 1)" : "each_col's (1 x cols)");
  }

  index_t rows_, cols_;
  reduce_params p_;
};

// One-off calls. out, sum, sum_sq: (rows, 1) for each_row, (1, cols) for each_col.
template <reduce_kind K, class Policy = approx::exact, class TI, class TO>
  requires detail::reduce_kind_value<K> && approx::multiplier<Policy> && (K != reduce_kind::sum_and_sum_sq)
void reduce(mat<TI> in, mat<TO> out, reduce_params p = {}) {
  detail::check_mat(in, "reduce", "in");
  reduce_kernel<K, Policy, std::remove_const_t<TI>, TO>(in.rows, in.cols, p)(in, out);
}

template <reduce_kind K, class Policy = approx::exact, class TI, class TO>
  requires approx::multiplier<Policy> && (K == reduce_kind::sum_and_sum_sq)
void reduce(mat<TI> in, mat<TO> sum, mat<TO> sum_sq, reduce_params p = {}) {
  detail::check_mat(in, "reduce", "in");
  reduce_kernel<K, Policy, std::remove_const_t<TI>, TO>(in.rows, in.cols, p)(in, sum, sum_sq);
}

}  // namespace tpp
