// dnn::conv2d<approx::exact, float> against oneDNN 2.6's convolution primitives (forward training,
// backward-data, backward-weights; algorithm convolution_direct) on the same inputs, every loop nest conv2d
// has (direct, lowered, pixels; a request a shape does not take runs another nest, tested once), over a
// sweep: every stride (1..3) x pad (0..min(dilated filter - 1, 3)) x dilation (1..3) of a 3x3 filter on a
// 5x7 image, groups 1 and depthwise (the combinations conv2d rejects skipped: 5 rows under a dilated filter
// of 7 with no padding), then 1x1 images, odd sizes, groups 2, depthwise, C and K of 1, 3, 17 and 40 (below
// and above the vector width), N = 1 and 2, 5x5 and 1x1 filters, asymmetric strides, pads and dilations.
// Activations NHWC for both; oneDNN picks its weight layout (format any) reordered from and to tpp's HWIO.
//
// Tolerance: an output is the sum of n exact-policy products x_i w_i (n counted per output: the taps that
// fall inside the image, times the channels). Either library forms it in fp32 in some order, each product
// rounded at most once (or fused into an FMA) and n - 1 additions; every term meets at most n roundings, so
// |computed - exact| <= gamma_n sum |x_i w_i|, gamma_n = n u / (1 - n u), u = 2^-24 (adding the zeros of the
// padding is exact). Two such results differ by at most 2 gamma_n sum |x_i w_i|, the sum taken in double.
// Outputs start as NaN: an element either library leaves unwritten fails.

#if TPP_TEST_WITH_ONEDNN

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include <tpp/dnn/conv2d.hpp>

#include "dnn/conv2d_support.hpp"

#include "support.hpp"

namespace {

using namespace tpp;
using dnn::conv2d_shape;
using test::describe;

struct sizes {
  index_t P, Q, cg, kg, xr, wr, yr;
  explicit sizes(const conv2d_shape& s)
      : P(s.p()), Q(s.q()), cg(s.c / s.groups), kg(s.k / s.groups), xr(s.n * s.h * s.w), wr(s.r * s.s * cg),
        yr(s.n * P * Q) {}
};

// Per output element of one pass: the sum of its products' magnitudes and their count.
struct magnitudes {
  std::vector<double> mag, n;
  explicit magnitudes(index_t size) : mag(std::size_t(size)), n(std::size_t(size)) {}
  void add(std::size_t i, double p) {
    mag[i] += p;
    n[i] += 1;
  }
  double tol(std::size_t i) const {
    const double un = n[i] * test::u_fp32;
    return 2 * un / (1 - un) * mag[i];
  }
};

struct bounds {
  magnitudes y, dx, dw;
};

// Every product of the convolution, y[o] += x[i] w[k], dx[i] += dy[o] w[k], dw[k] += x[i] dy[o] (dense
// (N*P*Q, K), (N*H*W, C) and HWIO (R*S*C/groups, K) indices), the magnitudes of each pass's products.
bounds product_bounds(const conv2d_shape& s, const std::vector<float>& x, const std::vector<float>& w,
                      const std::vector<float>& dy) {
  const sizes d(s);
  bounds b{magnitudes(d.yr * s.k), magnitudes(d.xr * s.c), magnitudes(d.wr * s.k)};
  test::for_each_product(s, [&](std::size_t o, std::size_t i, std::size_t j) {
    b.y.add(o, std::abs(double(x[i]) * w[j]));
    b.dx.add(i, std::abs(double(dy[o]) * w[j]));
    b.dw.add(j, std::abs(double(x[i]) * dy[o]));
  });
  return b;
}

struct outputs {
  std::vector<float> y, dx, dw;
  explicit outputs(const sizes& d, const conv2d_shape& s)
      : y(std::size_t(d.yr * s.k), NAN), dx(std::size_t(d.xr * s.c), NAN), dw(std::size_t(d.wr * s.k), NAN) {}
};

// oneDNN's three passes on x, w (HWIO), dy; dw reordered back to HWIO.
outputs onednn_passes(const conv2d_shape& s, std::vector<float>& x, std::vector<float>& w, std::vector<float>& dy) {
  using dims = dnnl::memory::dims;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const sizes d(s);
  outputs out(d, s);
  // weights (g, k, c, r, s) at HWIO row (r S + s) Cg + c, column g Kg + k
  const dims wdims = s.groups > 1 ? dims{s.groups, d.kg, d.cg, s.r, s.s} : dims{s.k, s.c, s.r, s.s};
  const dims wstrides = s.groups > 1 ? dims{d.kg, 1, s.k, s.s * d.cg * s.k, d.cg * s.k} : dims{1, s.k, s.s * s.c * s.k, s.c * s.k};
  // right padding: the least that gives conv2d's output size (negative when the last window ends inside)
  const auto right = [](index_t out, index_t st, index_t taps, index_t dil, index_t in, index_t pad) {
    return std::max<index_t>(0, (out - 1) * st + (taps - 1) * dil + 1 - in - pad);
  };
  const dims st{s.stride_h, s.stride_w}, dil{s.dilation_h - 1, s.dilation_w - 1}, pl{s.pad_h, s.pad_w},
      pr{right(d.P, s.stride_h, s.r, s.dilation_h, s.h, s.pad_h), right(d.Q, s.stride_w, s.s, s.dilation_w, s.w, s.pad_w)};
  const dnnl::memory::desc src_md({s.n, s.c, s.h, s.w}, dt::f32, tag::nhwc), dst_md({s.n, s.k, d.P, d.Q}, dt::f32, tag::nhwc),
      w_any(wdims, dt::f32, tag::any), w_user(wdims, dt::f32, wstrides);
  const auto alg = dnnl::algorithm::convolution_direct;
  const dnnl::convolution_forward::primitive_desc fpd(
      {dnnl::prop_kind::forward_training, alg, src_md, w_any, dst_md, st, dil, pl, pr}, eng);
  const dnnl::convolution_backward_data::primitive_desc dpd({alg, src_md, w_any, dst_md, st, dil, pl, pr}, eng, fpd);
  const dnnl::convolution_backward_weights::primitive_desc wpd({alg, src_md, w_any, dst_md, st, dil, pl, pr}, eng, fpd);
  dnnl::memory X(src_md, eng, x.data()), DY(dst_md, eng, dy.data()), Y(dst_md, eng, out.y.data()),
      DX(src_md, eng, out.dx.data()), W(w_user, eng, w.data()), DW(w_user, eng, out.dw.data());
  dnnl::memory wf(fpd.weights_desc(), eng), wd(dpd.weights_desc(), eng), dw(wpd.diff_weights_desc(), eng);
  dnnl::reorder(W, wf).execute(strm, W, wf);
  dnnl::reorder(W, wd).execute(strm, W, wd);
  dnnl::convolution_forward(fpd).execute(strm, {{DNNL_ARG_SRC, X}, {DNNL_ARG_WEIGHTS, wf}, {DNNL_ARG_DST, Y}});
  dnnl::convolution_backward_data(dpd).execute(strm, {{DNNL_ARG_DIFF_DST, DY}, {DNNL_ARG_WEIGHTS, wd}, {DNNL_ARG_DIFF_SRC, DX}});
  dnnl::convolution_backward_weights(wpd).execute(strm, {{DNNL_ARG_SRC, X}, {DNNL_ARG_DIFF_DST, DY}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
  dnnl::reorder(dw, DW).execute(strm, dw, DW);
  strm.wait();
  return out;
}

std::size_t disagreements(const char* pass, const std::vector<float>& mine, const std::vector<float>& theirs,
                          const magnitudes& m) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < mine.size(); ++i)
    if (!(std::abs(double(mine[i]) - theirs[i]) <= m.tol(i)) && bad++ < 3)
      MESSAGE(pass, " element ", i, ": tpp ", mine[i], " oneDNN ", theirs[i], " tol ", m.tol(i));
  return bad;
}

// Every nest conv2d runs on s, each pass against oneDNN's. Returns the number of nests run.
int check_against_onednn(const conv2d_shape& s, std::uint64_t seed) {
  CAPTURE(describe(s));
  const sizes d(s);
  auto x = test::uniform(std::size_t(d.xr * s.c), -1, 1, seed);
  auto w = test::uniform(std::size_t(d.wr * s.k), -1, 1, seed + 1);
  auto dy = test::uniform(std::size_t(d.yr * s.k), -1, 1, seed + 2);
  const bounds b = product_bounds(s, x, w, dy);
  const outputs ref = onednn_passes(s, x, w, dy);
  const mat<const float> X{x.data(), d.xr, s.c, s.c}, W{w.data(), d.wr, s.k, s.k}, DY{dy.data(), d.yr, s.k, s.k};
  std::vector<dnn::conv2d_algorithm> ran;
  for (const auto a : {dnn::conv2d_algorithm::direct, dnn::conv2d_algorithm::lowered, dnn::conv2d_algorithm::pixels}) {
    const dnn::conv2d<approx::exact, float> conv(s, a);
    if (std::find(ran.begin(), ran.end(), conv.algorithm()) != ran.end()) continue;
    ran.push_back(conv.algorithm());
    CAPTURE(int(conv.algorithm()));
    outputs mine(d, s);
    conv.forward(X, W, {mine.y.data(), d.yr, s.k, s.k});
    conv.backward_data(DY, W, {mine.dx.data(), d.xr, s.c, s.c});
    conv.backward_weights(X, DY, {mine.dw.data(), d.wr, s.k, s.k});
    CHECK(disagreements("forward", mine.y, ref.y, b.y) == 0);
    CHECK(disagreements("backward_data", mine.dx, ref.dx, b.dx) == 0);
    CHECK(disagreements("backward_weights", mine.dw, ref.dw, b.dw) == 0);
  }
  return int(ran.size());
}

}  // namespace

TEST_CASE("conv2d vs oneDNN: stride x pad x dilation of a 3x3 filter, groups 1 and depthwise") {
  std::uint64_t seed = 500;
  int runs = 0, rejected = 0;
  for (index_t stride = 1; stride <= 3; ++stride)
    for (index_t dil = 1; dil <= 3; ++dil)
      for (index_t pad = 0; pad <= std::min<index_t>(2 * dil, 3); ++pad)
        // n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups
        for (const conv2d_shape& s : {conv2d_shape{1, 5, 7, 3, 4, 3, 3, stride, stride, pad, pad, dil, dil, 1},
                                      conv2d_shape{2, 5, 7, 4, 4, 3, 3, stride, stride, pad, pad, dil, dil, 4}}) {
          if (test::error_argument([&] { dnn::conv2d<>{s}; }) != "(no error)") {
            ++rejected;
            continue;
          }
          runs += check_against_onednn(s, seed += 10);
        }
  CHECK(rejected == 2 * 3);  // dilation 3, pad 0: 5 rows under a dilated filter of 7
  CHECK(runs > 0);
}

TEST_CASE("conv2d vs oneDNN: 1x1 images, odd sizes, groups, C and K around the vector width, 5x5 and 1x1 filters") {
  // n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups
  const conv2d_shape shapes[] = {
      {1, 1, 1, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1},       // 1x1 image, 1x1 filter
      {2, 1, 1, 17, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // 1x1 image under a padded 3x3
      {2, 9, 7, 17, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // odd sizes, C and K above the vector width
      {1, 7, 5, 40, 17, 3, 3, 2, 1, 1, 0, 1, 2, 1},     // asymmetric stride, pad, dilation
      {1, 9, 9, 40, 3, 3, 3, 1, 3, 0, 2, 3, 1, 1},      // K below the vector width, stride_w 3
      {2, 7, 7, 6, 34, 3, 3, 1, 1, 1, 1, 1, 1, 2},      // groups 2: Cg 3, Kg 17
      {1, 5, 5, 40, 34, 3, 3, 2, 2, 1, 1, 1, 1, 2},     // groups 2: Cg 20, Kg 17, stride 2
      {2, 7, 7, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 17},    // depthwise, 17 channels
      {1, 9, 9, 40, 40, 3, 3, 2, 2, 1, 1, 2, 2, 40},    // depthwise, 40 channels, stride and dilation 2
      {1, 5, 6, 136, 136, 3, 3, 1, 2, 1, 1, 1, 1, 136}, // depthwise, a block of 8 vectors and a tail
      {1, 9, 9, 1, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1},       // 5x5, C = 1 (LeNet's first layer)
      {2, 9, 9, 3, 17, 5, 5, 1, 1, 2, 2, 1, 1, 1},      // 5x5, C = 3, N = 2
      {1, 9, 7, 17, 17, 5, 5, 2, 1, 0, 2, 1, 1, 1},     // 5x5, stride 2 x 1
      {2, 5, 7, 17, 40, 1, 1, 1, 1, 0, 0, 1, 1, 1},     // 1x1 filter, N = 2
      {1, 7, 7, 40, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1},      // 1x1 filter, stride 2 (dx zero between)
      {1, 9, 5, 6, 9, 3, 3, 3, 3, 1, 1, 1, 1, 3},       // groups 3, stride 3
  };
  std::uint64_t seed = 900;
  for (const conv2d_shape& s : shapes) CHECK(check_against_onednn(s, seed += 10) >= 1);
}

#endif  // TPP_TEST_WITH_ONEDNN
