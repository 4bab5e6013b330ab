// tpp_compare_pool: dnn::pool2d next to oneDNN 2.6's pooling primitives, in one process, interleaved
// (medians), on one thread and then two:
//   ResNet's 3x3 stride-2 max pool (N = 8, 112x112x64, pad 1), LeNet-5's 2x2 max pools (N = 64, 28x28x6
//   and 10x10x16), 2x2 average pools (LeNet's subsampling at 28x28x6, N = 64; DenseNet's transition at
//   56x56x128, N = 8), the global average pool of ResNet-50's head (N = 8, 7x7x2048).
// Directions: fwd_inf (max without argmax / oneDNN forward_inference), fwd_train (max with argmax /
// forward_training with its workspace), bwd (from that argmax / workspace); an average pool has fwd_inf and
// bwd. NHWC for both. Per row: microseconds of each and speed = oneDNN time / tpp time (> 1: tpp faster);
// geomean per thread count at the end.
//
//   tpp_compare_pool [--quick] [--threads N] [--json FILE]

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <tpp/dnn/pool2d.hpp>

#include "aligned.hpp"
#include "layer_report.hpp"
#include "timing.hpp"

namespace {

using tpp::index_t;
using tpp::bench::interleaved;
using tpp::bench::random_vector;
using tpp::dnn::pool2d_shape;
using tpp::dnn::pool_kind;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using fvec = tpp::bench::aligned_vector<float>;

struct layer {
  std::string name;
  pool2d_shape s;
};

std::vector<layer> layers() {
  // n, h, w, c, r, s, stride_h, stride_w, pad_h, pad_w, kind, avg_count_pad
  return {
      {"resnet max 3x3/2 112x112x64", {8, 112, 112, 64, 3, 3, 2, 2, 1, 1, pool_kind::max}},
      {"lenet max 2x2/2 28x28x6", {64, 28, 28, 6, 2, 2, 2, 2, 0, 0, pool_kind::max}},
      {"lenet max 2x2/2 10x10x16", {64, 10, 10, 16, 2, 2, 2, 2, 0, 0, pool_kind::max}},
      {"lenet avg 2x2/2 28x28x6", {64, 28, 28, 6, 2, 2, 2, 2, 0, 0, pool_kind::avg}},
      {"densenet avg 2x2/2 56x56x128", {8, 56, 56, 128, 2, 2, 2, 2, 0, 0, pool_kind::avg}},
      {"global avg 7x7x2048", pool2d_shape::global_avg(8, 7, 7, 2048)},
  };
}

// The tensors of one layer, as tpp views.
struct tensors {
  pool2d_shape s;
  index_t xr, yr;
  fvec x, y, dy, dx;
  tpp::bench::aligned_vector<std::int32_t> arg;
  explicit tensors(const pool2d_shape& sh)
      : s(sh),
        xr(sh.n * sh.h * sh.w),
        yr(sh.n * sh.p() * sh.q()),
        x(random_vector(std::size_t(xr * sh.c), 1)),
        y(std::size_t(yr * sh.c)),
        dy(random_vector(std::size_t(yr * sh.c), 2)),
        dx(x.size()),
        arg(y.size()) {}
  tpp::mat<const float> X() const { return {x.data(), xr, s.c, s.c}; }
  tpp::mat<const float> DY() const { return {dy.data(), yr, s.c, s.c}; }
  tpp::mat<float> Y() { return {y.data(), yr, s.c, s.c}; }
  tpp::mat<float> DX() { return {dx.data(), xr, s.c, s.c}; }
  tpp::mat<std::int32_t> A() { return {arg.data(), yr, s.c, s.c}; }
};

// oneDNN's primitives for the layer on the same data: inference forward, training forward (its workspace),
// backward.
struct onednn_layer {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::primitive inf, train, bwd;
  std::unordered_map<int, dnnl::memory> inf_args, train_args, bwd_args;
  fvec y, dx;  // its own outputs

  onednn_layer(const pool2d_shape& s, tensors& t) : y(t.y.size()), dx(t.dx.size()) {
    using dims = dnnl::memory::dims;
    const index_t P = s.p(), Q = s.q();
    const dnnl::memory::desc src({s.n, s.c, s.h, s.w}, dt::f32, tag::nhwc), dst({s.n, s.c, P, Q}, dt::f32, tag::nhwc);
    const dims st{s.stride_h, s.stride_w}, k{s.r, s.s}, pl{s.pad_h, s.pad_w},
        pr{(P - 1) * s.stride_h + s.r - s.h - s.pad_h, (Q - 1) * s.stride_w + s.s - s.w - s.pad_w};
    const auto alg = s.kind == pool_kind::max ? dnnl::algorithm::pooling_max
                     : s.avg_count_pad        ? dnnl::algorithm::pooling_avg_include_padding
                                              : dnnl::algorithm::pooling_avg_exclude_padding;
    const dnnl::pooling_forward::primitive_desc ipd({dnnl::prop_kind::forward_inference, alg, src, dst, st, k, pl, pr}, eng);
    const dnnl::pooling_forward::primitive_desc tpd({dnnl::prop_kind::forward_training, alg, src, dst, st, k, pl, pr}, eng);
    const dnnl::pooling_backward::primitive_desc bpd({alg, src, dst, st, k, pl, pr}, eng, tpd);
    dnnl::memory X(src, eng, t.x.data()), Y(dst, eng, y.data()), DY(dst, eng, t.dy.data()), DX(src, eng, dx.data());
    dnnl::memory ws(tpd.workspace_desc(), eng);
    inf = dnnl::pooling_forward(ipd);
    train = dnnl::pooling_forward(tpd);
    bwd = dnnl::pooling_backward(bpd);
    inf_args = {{DNNL_ARG_SRC, X}, {DNNL_ARG_DST, Y}};
    train_args = {{DNNL_ARG_SRC, X}, {DNNL_ARG_DST, Y}, {DNNL_ARG_WORKSPACE, ws}};
    bwd_args = {{DNNL_ARG_DIFF_DST, DY}, {DNNL_ARG_DIFF_SRC, DX}, {DNNL_ARG_WORKSPACE, ws}};
    train.execute(strm, train_args);  // the workspace backward reads
    strm.wait();
  }
  std::function<void()> run(dnnl::primitive& p, std::unordered_map<int, dnnl::memory>& a) {
    return [this, &p, &a] {
      p.execute(strm, a);
      strm.wait();
    };
  }
};

int reps_for(double bytes) { return bytes > 2e7 ? 15 : bytes > 2e6 ? 41 : 101; }

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int max_threads = 2;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--threads" && i + 1 < argc)
      max_threads = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else {
      std::fprintf(stderr, "tpp_compare_pool: unknown argument '%s' (--quick, --threads N, --json FILE)\n", a.c_str());
      return 2;
    }
  }
  if (max_threads < 1) {
    std::fprintf(stderr, "tpp_compare_pool: --threads must be at least 1\n");
    return 2;
  }
  std::vector<tpp::bench::layer_result> out;
  for (int th = 1; th <= max_threads; ++th) {
    omp_set_num_threads(th);
    std::printf("\n%d thread%s: microseconds tpp | oneDNN | speed (oneDNN time / tpp time)\n", th, th > 1 ? "s" : "");
    double logs = 0;
    int rows = 0;
    for (const layer& l : layers()) {
      tensors t(l.s);
      const tpp::dnn::pool2d<> pool(l.s);
      onednn_layer peer(l.s, t);
      const bool max = l.s.kind == pool_kind::max;
      pool.forward(t.X(), t.Y(), max ? t.A() : tpp::mat<std::int32_t>{});  // the argmax backward reads
      const tpp::mat<const std::int32_t> arg = max ? tpp::mat<const std::int32_t>(t.A()) : tpp::mat<const std::int32_t>{};
      struct dir {
        const char* name;
        std::function<void()> mine, theirs;
      };
      std::vector<dir> dirs = {{"fwd_inf", [&] { pool.forward(t.X(), t.Y()); }, peer.run(peer.inf, peer.inf_args)}};
      if (max) dirs.push_back({"fwd_train", [&] { pool.forward(t.X(), t.Y(), t.A()); }, peer.run(peer.train, peer.train_args)});
      dirs.push_back({"bwd", [&] { pool.backward(t.DY(), t.DX(), arg); }, peer.run(peer.bwd, peer.bwd_args)});
      const double bytes = double(t.x.size() + t.y.size()) * sizeof(float);
      for (dir& d : dirs) {
        const auto m = interleaved({d.mine, d.theirs}, quick ? 5 : reps_for(bytes));
        out.push_back({l.name, d.name, "onednn", th, m[0], m[1], 0.0});
        logs += std::log(m[1] / m[0]);
        ++rows;
        std::printf("%-30s %-9s | %9.1f %9.1f | %5.2fx\n", l.name.c_str(), d.name, m[0] * 1e6, m[1] * 1e6, m[1] / m[0]);
        std::fflush(stdout);
      }
    }
    std::printf("geomean (%d thread%s): %.2fx\n", th, th > 1 ? "s" : "", std::exp(logs / rows));
  }
  if (!json.empty() && !tpp::bench::write_json(json, out, "tpp_compare_pool")) return 2;
}
