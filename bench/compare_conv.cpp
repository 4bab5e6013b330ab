// tpp_compare_conv: dnn::conv2d next to oneDNN 2.6's convolution primitives, in one process, interleaved
// (medians), forward (training), backward-data and backward-weights, on one thread and then two:
//   ResNet-50's 3x3 layers at N = 8 (56x56x64, 28x28x128, 14x14x256, 7x7x512), its 1x1 layers 64 -> 256
//   and 256 -> 64 at 56x56, a stride-2 3x3 (56x56x128 -> 28x28), a depthwise 3x3 (MobileNet, 56x56x128),
//   LeNet-5's two convolutions at N = 64.
// Activations NHWC for both; oneDNN picks its weight layout (format any), reordered from tpp's HWIO once,
// outside the timing. Per row: GFLOP/s (2 N P Q K R S C/groups) of each and speed = oneDNN time / tpp time
// (> 1: tpp faster); geomean per direction and thread count at the end. With --policies, each layer's three
// passes with mitchell<7>, drum<6>, bf16_rz and lut<mitchell, 7> as a multiple of exact tpp's time.
//
//   tpp_compare_conv [--quick] [--threads N] [--policies] [--algorithm direct|lowered|pixels] [--json FILE]
//   (--algorithm: every layer on that loop nest in place of conv2d's automatic choice)

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <tpp/approx/registry.hpp>
#include <tpp/dnn/conv2d.hpp>

#include "aligned.hpp"
#include "layer_report.hpp"
#include "timing.hpp"

namespace {

using tpp::index_t;
using tpp::bench::interleaved;
using tpp::bench::random_vector;
using tpp::dnn::conv2d_shape;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using fvec = tpp::bench::aligned_vector<float>;

struct layer {
  std::string name;
  conv2d_shape s;
};

std::vector<layer> layers() {
  // n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups
  return {
      {"resnet 3x3 56x56x64", {8, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}},
      {"resnet 3x3 28x28x128", {8, 28, 28, 128, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1}},
      {"resnet 3x3 14x14x256", {8, 14, 14, 256, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1}},
      {"resnet 3x3 7x7x512", {8, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1}},
      {"resnet 1x1 56x56 64>256", {8, 56, 56, 64, 256, 1, 1, 1, 1, 0, 0, 1, 1, 1}},
      {"resnet 1x1 56x56 256>64", {8, 56, 56, 256, 64, 1, 1, 1, 1, 0, 0, 1, 1, 1}},
      {"stride 2 3x3 56>28 x128", {8, 56, 56, 128, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1}},
      {"depthwise 3x3 56x56x128", {8, 56, 56, 128, 128, 3, 3, 1, 1, 1, 1, 1, 1, 128}},
      {"lenet conv1 28x28x1>6 5x5", {64, 28, 28, 1, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1}},
      {"lenet conv2 14x14x6>16 5x5", {64, 14, 14, 6, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1}},
  };
}

double flops(const conv2d_shape& s) {
  return 2.0 * double(s.n) * double(s.p()) * double(s.q()) * double(s.k) * double(s.r) * double(s.s) *
         double(s.c / s.groups);
}

// The tensors of one layer, as tpp views.
struct tensors {
  conv2d_shape s;
  index_t xr, wr, yr;
  fvec x, w, y, dy, dx, dw;
  explicit tensors(const conv2d_shape& sh)
      : s(sh),
        xr(sh.n * sh.h * sh.w),
        wr(sh.r * sh.s * (sh.c / sh.groups)),
        yr(sh.n * sh.p() * sh.q()),
        x(random_vector(std::size_t(xr * sh.c), 1)),
        w(random_vector(std::size_t(wr * sh.k), 2)),
        y(std::size_t(yr * sh.k)),
        dy(random_vector(std::size_t(yr * sh.k), 3)),
        dx(x.size()),
        dw(w.size()) {}
  tpp::mat<const float> X() const { return {x.data(), xr, s.c, s.c}; }
  tpp::mat<const float> W() const { return {w.data(), wr, s.k, s.k}; }
  tpp::mat<const float> DY() const { return {dy.data(), yr, s.k, s.k}; }
  tpp::mat<float> Y() { return {y.data(), yr, s.k, s.k}; }
  tpp::mat<float> DX() { return {dx.data(), xr, s.c, s.c}; }
  tpp::mat<float> DW() { return {dw.data(), wr, s.k, s.k}; }
};

// The three passes of conv2d<P> on t.
template <class P>
std::vector<std::function<void()>> tpp_passes(const tpp::dnn::conv2d<P>& c, tensors& t) {
  return {[&] { c.forward(t.X(), t.W(), t.Y()); }, [&] { c.backward_data(t.DY(), t.W(), t.DX()); },
          [&] { c.backward_weights(t.X(), t.DY(), t.DW()); }};
}

// oneDNN's three primitives for the layer, on the same data (weights reordered from HWIO once).
struct onednn_layer {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::primitive fwd, bwd_d, bwd_w;
  std::unordered_map<int, dnnl::memory> fwd_args, bwd_d_args, bwd_w_args;

  onednn_layer(const conv2d_shape& s, tensors& t) {
    using dims = dnnl::memory::dims;
    const index_t cg = s.c / s.groups, kg = s.k / s.groups, P = s.p(), Q = s.q();
    const dims src{s.n, s.c, s.h, s.w}, dst{s.n, s.k, P, Q};
    const dims wdims = s.groups > 1 ? dims{s.groups, kg, cg, s.r, s.s} : dims{s.k, s.c, s.r, s.s};
    // tpp's HWIO: row (r S + s) Cg + c, column g Kg + k
    const dims wstrides = s.groups > 1 ? dims{kg, 1, s.k, s.s * cg * s.k, cg * s.k} : dims{1, s.k, s.s * s.c * s.k, s.c * s.k};
    const dims strides{s.stride_h, s.stride_w}, dil{s.dilation_h - 1, s.dilation_w - 1}, pl{s.pad_h, s.pad_w};
    const dims pr{(P - 1) * s.stride_h + (s.r - 1) * s.dilation_h + 1 - s.h - s.pad_h,
                  (Q - 1) * s.stride_w + (s.s - 1) * s.dilation_w + 1 - s.w - s.pad_w};
    const dnnl::memory::desc src_md(src, dt::f32, tag::nhwc), dst_md(dst, dt::f32, tag::nhwc),
        w_any(wdims, dt::f32, tag::any), w_user(wdims, dt::f32, wstrides);
    const auto alg = dnnl::algorithm::convolution_direct;
    const dnnl::convolution_forward::primitive_desc fpd(
        {dnnl::prop_kind::forward_training, alg, src_md, w_any, dst_md, strides, dil, pl, pr}, eng);
    const dnnl::convolution_backward_data::primitive_desc dpd({alg, src_md, w_any, dst_md, strides, dil, pl, pr}, eng, fpd);
    const dnnl::convolution_backward_weights::primitive_desc wpd({alg, src_md, w_any, dst_md, strides, dil, pl, pr}, eng, fpd);
    dnnl::memory x(src_md, eng, t.x.data()), y(dst_md, eng, t.y.data()), dy(dst_md, eng, t.dy.data()),
        dx(src_md, eng, t.dx.data()), wu(w_user, eng, t.w.data());
    dnnl::memory wf(fpd.weights_desc(), eng), wd(dpd.weights_desc(), eng), dw(wpd.diff_weights_desc(), eng);
    dnnl::reorder(wu, wf).execute(strm, wu, wf);
    dnnl::reorder(wu, wd).execute(strm, wu, wd);
    strm.wait();
    fwd = dnnl::convolution_forward(fpd);
    bwd_d = dnnl::convolution_backward_data(dpd);
    bwd_w = dnnl::convolution_backward_weights(wpd);
    fwd_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, wf}, {DNNL_ARG_DST, y}};
    bwd_d_args = {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, wd}, {DNNL_ARG_DIFF_SRC, dx}};
    bwd_w_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
  }
  std::vector<std::function<void()>> passes() {
    const auto run = [this](dnnl::primitive& p, std::unordered_map<int, dnnl::memory>& a) {
      return [this, &p, &a] {
        p.execute(strm, a);
        strm.wait();
      };
    };
    return {run(fwd, fwd_args), run(bwd_d, bwd_d_args), run(bwd_w, bwd_w_args)};
  }
};

const char* const dirs[3] = {"fwd", "bwd_d", "bwd_w"};

int reps_for(double fl) { return fl > 2e10 ? 5 : fl > 2e9 ? 9 : 21; }

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, policies = false;
  int max_threads = 2;
  auto algorithm = tpp::dnn::conv2d_algorithm::automatic;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--policies")
      policies = true;
    else if (a == "--threads" && i + 1 < argc)
      max_threads = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else if (a == "--algorithm" && i + 1 < argc && std::string(argv[i + 1]) == "direct" && ++i)
      algorithm = tpp::dnn::conv2d_algorithm::direct;
    else if (a == "--algorithm" && i + 1 < argc && std::string(argv[i + 1]) == "lowered" && ++i)
      algorithm = tpp::dnn::conv2d_algorithm::lowered;
    else if (a == "--algorithm" && i + 1 < argc && std::string(argv[i + 1]) == "pixels" && ++i)
      algorithm = tpp::dnn::conv2d_algorithm::pixels;
    else {
      std::fprintf(stderr,
                   "tpp_compare_conv: unknown argument '%s' (--quick, --threads N, --policies, --algorithm "
                   "direct|lowered, --json FILE)\n",
                   a.c_str());
      return 2;
    }
  }
  if (max_threads < 1) {
    std::fprintf(stderr, "tpp_compare_conv: --threads must be at least 1\n");
    return 2;
  }
  std::vector<tpp::bench::layer_result> out;
  for (int th = 1; th <= max_threads; ++th) {
    omp_set_num_threads(th);
    std::printf("\n%d thread%s: GFLOP/s tpp | oneDNN | speed (oneDNN time / tpp time)\n", th, th > 1 ? "s" : "");
    std::vector<double> logs[3];
    for (const layer& l : layers()) {
      tensors t(l.s);
      const tpp::dnn::conv2d<tpp::approx::exact> conv(l.s, algorithm);
      onednn_layer peer(l.s, t);
      auto mine = tpp_passes(conv, t);
      auto theirs = peer.passes();
      const double fl = flops(l.s);
      for (int d = 0; d < 3; ++d) {
        const auto m = interleaved({mine[std::size_t(d)], theirs[std::size_t(d)]}, quick ? 3 : reps_for(fl));
        out.push_back({l.name, dirs[d], "onednn", th, m[0], m[1], fl * 1e-9});
        logs[d].push_back(std::log(m[1] / m[0]));
        std::printf("%-28s %-5s | %7.1f %7.1f | %5.2fx\n", l.name.c_str(), dirs[d], fl / m[0] * 1e-9, fl / m[1] * 1e-9,
                    m[1] / m[0]);
        std::fflush(stdout);
      }
    }
    for (int d = 0; d < 3; ++d) {
      double sum = 0;
      for (double v : logs[d]) sum += v;
      std::printf("geomean %-5s (%d thread%s): %.2fx\n", dirs[d], th, th > 1 ? "s" : "", std::exp(sum / double(logs[d].size())));
    }
    if (policies) {
      std::printf("\n%d thread%s: approximate conv time / exact tpp time (fwd, bwd_d, bwd_w)\n", th, th > 1 ? "s" : "");
      for (const layer& l : layers()) {
        tensors t(l.s);
        const tpp::dnn::conv2d<tpp::approx::exact> exact(l.s, algorithm);
        const tpp::dnn::conv2d<tpp::approx::mitchell<7>> mitchell(l.s, algorithm);
        const tpp::dnn::conv2d<tpp::approx::drum<6>> drum(l.s, algorithm);
        const tpp::dnn::conv2d<tpp::approx::bf16_rz> bf16(l.s, algorithm);
        const tpp::dnn::conv2d<tpp::approx::lut<tpp::approx::mitchell_model, 7>> lut(l.s, algorithm);
        const auto e = tpp_passes(exact, t), a = tpp_passes(mitchell, t), b = tpp_passes(drum, t), c = tpp_passes(bf16, t),
                   d = tpp_passes(lut, t);
        std::printf("%-28s", l.name.c_str());
        for (int k = 0; k < 3; ++k) {
          const std::size_t i = std::size_t(k);
          const auto m = interleaved({e[i], a[i], b[i], c[i], d[i]}, quick ? 2 : 5);
          const char* names[4] = {"mitchell<7>", "drum<6>", "bf16_rz", "lut<mitchell,7>"};
          for (int p = 0; p < 4; ++p) out.push_back({l.name, dirs[k], names[p], th, m[0], m[std::size_t(p + 1)], flops(l.s) * 1e-9});
          std::printf(" | %s m %.1f d %.1f b %.1f l %.1f", dirs[k], m[1] / m[0], m[2] / m[0], m[3] / m[0], m[4] / m[0]);
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  if (!json.empty() && !tpp::bench::write_json(json, out, "tpp_compare_conv")) return 2;
}
