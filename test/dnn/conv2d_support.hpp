#pragma once
// What the conv2d tests share: a shape's derived sizes, its description for failure messages, and the
// enumeration of its products.

#include <cstddef>
#include <cstdio>
#include <string>

#include <tpp/dnn/conv2d.hpp>

namespace tpp::test {

// Output height and width, channels per group in and out.
struct conv_dims {
  index_t P, Q, cg, kg;
  explicit conv_dims(const dnn::conv2d_shape& s) : P(s.p()), Q(s.q()), cg(s.c / s.groups), kg(s.k / s.groups) {}
};

inline std::string describe(const dnn::conv2d_shape& s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "n%lld %lldx%lldx%lld k%lld %lldx%lld stride %lld,%lld pad %lld,%lld dil %lld,%lld groups %lld",
                (long long)s.n, (long long)s.h, (long long)s.w, (long long)s.c, (long long)s.k, (long long)s.r,
                (long long)s.s, (long long)s.stride_h, (long long)s.stride_w, (long long)s.pad_h, (long long)s.pad_w,
                (long long)s.dilation_h, (long long)s.dilation_w, (long long)s.groups);
  return buf;
}

// Calls f(o, i, k) for every product of the convolution: output element o (of y, as (N*P*Q, K) dense),
// input element i (of x) and weight element k (of w) with y[o] += x[i] w[k].
template <class F>
void for_each_product(const dnn::conv2d_shape& s, F f) {
  const conv_dims d(s);
  for (index_t n = 0; n < s.n; ++n)
    for (index_t p = 0; p < d.P; ++p)
      for (index_t q = 0; q < d.Q; ++q)
        for (index_t r = 0; r < s.r; ++r)
          for (index_t t = 0; t < s.s; ++t) {
            const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h, iw = q * s.stride_w - s.pad_w + t * s.dilation_w;
            if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
            for (index_t k = 0; k < s.k; ++k) {
              const index_t g = k / d.kg;
              for (index_t c = 0; c < d.cg; ++c)
                f(std::size_t(((n * d.P + p) * d.Q + q) * s.k + k), std::size_t(((n * s.h + ih) * s.w + iw) * s.c + g * d.cg + c),
                  std::size_t(((r * s.s + t) * d.cg + c) * s.k + k));
            }
          }
}

}  // namespace tpp::test
