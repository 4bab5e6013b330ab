#pragma once
// What the conv2d tests share: a shape's derived sizes and its description for failure messages.

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

}  // namespace tpp::test
