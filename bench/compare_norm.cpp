// tpp_compare_norm: tpp's normalisations next to oneDNN 2.6's primitives, one thread, in one process,
// interleaved (medians), forward (training: statistics + normalisation) and backward:
//   batchnorm  ResNet-50 activations (N = 8) as NHWC, i.e. tpp's channel_axis::cols over (N H W, C), vs
//              batch_normalization with use_scale | use_shift
//   layernorm  BERT-base (tokens, 768 / 3072) vs layer_normalization with use_scale | use_shift
//   softmax    BERT-base attention scores (8 x 12 heads x 128 queries x 128 keys; 2 x 12 x 512 x 512) and
//              a vocabulary (128, 30522) vs softmax_v2 (softmax_accurate / softmax_log) over the last axis
// Per row: the minimal memory traffic's GB/s for both (forward: read x, write y; backward: read x or y and
// dy, write dx), and speed = oneDNN time / tpp time (> 1: tpp faster). Geomean per op at the end.
//
//   tpp_compare_norm [--quick] [--json FILE] [--stream-threshold BYTES]
// (--stream-threshold sets tpp::stream_threshold: outputs of at least BYTES stream, core/stream.hpp.)

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <xsimd/xsimd.hpp>
#include <omp.h>

#include <tpp/ops/norm.hpp>
#include <tpp/ops/softmax.hpp>

#include "aligned.hpp"
#include "timing.hpp"

namespace {

using tpp::bench::interleaved;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dnnl::normalization_flags;

using fvec = tpp::bench::aligned_vector<float>;

struct row {
  std::string op, shape, dir;
  double bytes, t_tpp, t_dnn;
  double speed() const { return t_dnn / t_tpp; }
};

fvec random_vector(std::size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  fvec v(n);
  for (auto& x : v) x = d(g);
  return v;
}

int reps_for(double bytes) { return bytes > 2e8 ? 7 : bytes > 2e7 ? 15 : 41; }

void print(const row& r) {
  std::printf("%-10s %-28s %-4s | %8.1f %8.1f | %6.2fx\n", r.op.c_str(), r.shape.c_str(), r.dir.c_str(),
              r.bytes / r.t_tpp * 1e-9, r.bytes / r.t_dnn * 1e-9, r.speed());
  std::fflush(stdout);
}

// Runs one oneDNN primitive on a fixed argument map.
struct dnn_call {
  dnnl::primitive p;
  std::unordered_map<int, dnnl::memory> args;
  dnnl::stream* s;
  void operator()() {
    p.execute(*s, args);
    s->wait();
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--stream-threshold" && i + 1 < argc)
      tpp::stream_threshold = std::stoull(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--json FILE] [--stream-threshold BYTES]\n", argv[0]);
      return 2;
    }
  }
  omp_set_num_threads(1);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::vector<row> rows;
  const float eps = 1e-5f;
  std::printf("Normalisations, one thread, fp32; GB/s of the minimal traffic (tpp, oneDNN) and speed = oneDNN time / "
              "tpp time, medians of interleaved runs\n%-10s %-28s %-4s | %8s %8s | %7s\n",
              "op", "shape", "dir", "tpp", "oneDNN", "speed");

  // ---- batchnorm, NHWC ----
  struct bn_shape {
    const char* name;
    long n, c, h, w;
  };
  const std::vector<bn_shape> bn_shapes =
      quick ? std::vector<bn_shape>{{"resnet50 res3 28x28x512", 8, 512, 28, 28}}
            : std::vector<bn_shape>{{"resnet50 res2 56x56x64", 8, 64, 56, 56},
                                    {"resnet50 res2 56x56x256", 8, 256, 56, 56},
                                    {"resnet50 res3 28x28x512", 8, 512, 28, 28},
                                    {"resnet50 res4 14x14x1024", 8, 1024, 14, 14},
                                    {"resnet50 res5 7x7x2048", 8, 2048, 7, 7}};
  for (const auto& s : bn_shapes) {
    const long M = s.n * s.h * s.w, C = s.c;
    auto x = random_vector(std::size_t(M * C), -1.0f, 3.0f, 1), dy = random_vector(std::size_t(M * C), -1.0f, 1.0f, 2);
    auto gamma = random_vector(std::size_t(C), 0.5f, 1.5f, 3), beta = random_vector(std::size_t(C), -0.5f, 0.5f, 4);
    fvec y(x.size()), dx(x.size()), mean(static_cast<std::size_t>(C)), var(static_cast<std::size_t>(C)), dg(static_cast<std::size_t>(C)),
        db(static_cast<std::size_t>(C));
    fvec dmean(static_cast<std::size_t>(C)), dvar(static_cast<std::size_t>(C)), ddg(static_cast<std::size_t>(C)), ddb(static_cast<std::size_t>(C));
    // tpp
    const tpp::batchnorm_kernel<> k(M, C, {eps, tpp::channel_axis::cols});
    const tpp::mat<const float> X{x.data(), M, C, C}, DY{dy.data(), M, C, C};
    const tpp::mat<float> Y{y.data(), M, C, C}, DX{dx.data(), M, C, C};
    // oneDNN
    const dnnl::memory::desc d({s.n, s.c, s.h, s.w}, dt::f32, tag::nhwc), cd({C}, dt::f32, tag::a);
    const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    const dnnl::batch_normalization_forward::primitive_desc fpd(
        {dnnl::prop_kind::forward_training, d, eps, flags}, eng);
    const dnnl::batch_normalization_backward::primitive_desc bpd({dnnl::prop_kind::backward, d, d, eps, flags}, eng, fpd);
    dnnl::memory xm(d, eng, x.data()), ym(d, eng, y.data()), dym(d, eng, dy.data()), dxm(d, eng, dx.data());
    dnnl::memory gm(cd, eng, gamma.data()), bm(cd, eng, beta.data()), mm(cd, eng, dmean.data()), vm(cd, eng, dvar.data());
    dnnl::memory dgm(cd, eng, ddg.data()), dbm(cd, eng, ddb.data());
    dnn_call fwd{dnnl::batch_normalization_forward(fpd),
                 {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCALE, gm}, {DNNL_ARG_SHIFT, bm},
                  {DNNL_ARG_MEAN, mm}, {DNNL_ARG_VARIANCE, vm}},
                 &strm};
    dnn_call bwd{dnnl::batch_normalization_backward(bpd),
                 {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_SCALE, gm}, {DNNL_ARG_SHIFT, bm}, {DNNL_ARG_MEAN, mm},
                  {DNNL_ARG_VARIANCE, vm}, {DNNL_ARG_DIFF_SRC, dxm}, {DNNL_ARG_DIFF_SCALE, dgm}, {DNNL_ARG_DIFF_SHIFT, dbm}},
                 &strm};
    const double bytes = double(M * C) * 4;
    auto t = interleaved({[&] { k.stats(X, mean, var), k.forward(X, mean, var, gamma, beta, Y); }, std::ref(fwd)},
                         reps_for(2 * bytes));
    const std::string shape = std::string(s.name) + " (" + std::to_string(M) + "x" + std::to_string(C) + ")";
    rows.push_back({"batchnorm", shape, "fwd", 2 * bytes, t[0], t[1]});
    print(rows.back());
    t = interleaved({[&] { k.backward(DY, X, mean, var, gamma, beta, DX, dg, db); }, std::ref(bwd)}, reps_for(3 * bytes));
    rows.push_back({"batchnorm", shape, "bwd", 3 * bytes, t[0], t[1]});
    print(rows.back());
  }

  // ---- layernorm ----
  struct ln_shape {
    const char* name;
    long t, c;
  };
  const std::vector<ln_shape> ln_shapes = quick ? std::vector<ln_shape>{{"bert-base 8x128 tokens", 1024, 768}}
                                                : std::vector<ln_shape>{{"bert-base 8x128 tokens", 1024, 768},
                                                                        {"bert-base 32x128 tokens", 4096, 768},
                                                                        {"bert-base 8x512 tokens", 4096, 768},
                                                                        {"bert fc1 width", 1024, 3072}};
  for (const auto& s : ln_shapes) {
    const long M = s.t, C = s.c;
    auto x = random_vector(std::size_t(M * C), -1.0f, 3.0f, 5), dy = random_vector(std::size_t(M * C), -1.0f, 1.0f, 6);
    auto gamma = random_vector(std::size_t(C), 0.5f, 1.5f, 7), beta = random_vector(std::size_t(C), -0.5f, 0.5f, 8);
    fvec y(x.size()), dx(x.size()), mean(static_cast<std::size_t>(M)), rstd(static_cast<std::size_t>(M)), dg(static_cast<std::size_t>(C)),
        db(static_cast<std::size_t>(C)), dmean(static_cast<std::size_t>(M)), dvar(static_cast<std::size_t>(M)), ddg(static_cast<std::size_t>(C)), ddb(static_cast<std::size_t>(C));
    const tpp::layernorm_kernel<> k(M, C);
    const tpp::mat<const float> X{x.data(), M, C, C}, DY{dy.data(), M, C, C};
    const tpp::mat<float> Y{y.data(), M, C, C}, DX{dx.data(), M, C, C};
    const dnnl::memory::desc d({M, C}, dt::f32, tag::ab), sd({M}, dt::f32, tag::a), cd({C}, dt::f32, tag::a);
    const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    const dnnl::layer_normalization_forward::primitive_desc fpd({dnnl::prop_kind::forward_training, d, sd, eps, flags}, eng);
    const dnnl::layer_normalization_backward::primitive_desc bpd({dnnl::prop_kind::backward, d, d, sd, eps, flags}, eng, fpd);
    dnnl::memory xm(d, eng, x.data()), ym(d, eng, y.data()), dym(d, eng, dy.data()), dxm(d, eng, dx.data());
    dnnl::memory gm(cd, eng, gamma.data()), bm(cd, eng, beta.data()), mm(sd, eng, dmean.data()), vm(sd, eng, dvar.data());
    dnnl::memory dgm(cd, eng, ddg.data()), dbm(cd, eng, ddb.data());
    dnn_call fwd{dnnl::layer_normalization_forward(fpd),
                 {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCALE, gm}, {DNNL_ARG_SHIFT, bm},
                  {DNNL_ARG_MEAN, mm}, {DNNL_ARG_VARIANCE, vm}},
                 &strm};
    dnn_call bwd{dnnl::layer_normalization_backward(bpd),
                 {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_SCALE, gm}, {DNNL_ARG_SHIFT, bm}, {DNNL_ARG_MEAN, mm},
                  {DNNL_ARG_VARIANCE, vm}, {DNNL_ARG_DIFF_SRC, dxm}, {DNNL_ARG_DIFF_SCALE, dgm}, {DNNL_ARG_DIFF_SHIFT, dbm}},
                 &strm};
    const double bytes = double(M * C) * 4;
    const std::string shape = std::string(s.name) + " (" + std::to_string(M) + "x" + std::to_string(C) + ")";
    auto t = interleaved({[&] { k.forward(X, gamma, beta, Y, mean, rstd); }, std::ref(fwd)}, reps_for(2 * bytes));
    rows.push_back({"layernorm", shape, "fwd", 2 * bytes, t[0], t[1]});
    print(rows.back());
    t = interleaved({[&] { k.backward(DY, X, mean, rstd, gamma, DX, dg, db); }, std::ref(bwd)}, reps_for(3 * bytes));
    rows.push_back({"layernorm", shape, "bwd", 3 * bytes, t[0], t[1]});
    print(rows.back());
  }

  // ---- softmax and log-softmax over the last axis ----
  struct sm_shape {
    const char* name;
    long rows, cols;
    tpp::softmax_kind kind;
  };
  const std::vector<sm_shape> sm_shapes =
      quick ? std::vector<sm_shape>{{"bert-base scores 8x12x128", 12288, 128, tpp::softmax_kind::softmax}}
            : std::vector<sm_shape>{{"bert-base scores 8x12x128", 12288, 128, tpp::softmax_kind::softmax},
                                    {"bert-base scores 2x12x512", 12288, 512, tpp::softmax_kind::softmax},
                                    {"vocabulary 128x30522", 128, 30522, tpp::softmax_kind::softmax},
                                    {"vocabulary 128x30522", 128, 30522, tpp::softmax_kind::log_softmax}};
  const auto softmax_rows = [&]<tpp::softmax_kind K>(const sm_shape& s) {
    const long M = s.rows, N = s.cols;
    const bool log = K == tpp::softmax_kind::log_softmax;
    auto x = random_vector(std::size_t(M * N), -8.0f, 8.0f, 9), dy = random_vector(std::size_t(M * N), -1.0f, 1.0f, 10);
    fvec y(x.size()), dx(x.size());
    const tpp::softmax_kernel<K> k(M, N);
    const tpp::mat<const float> X{x.data(), M, N, N}, DY{dy.data(), M, N, N}, YC{y.data(), M, N, N};
    const tpp::mat<float> Y{y.data(), M, N, N}, DX{dx.data(), M, N, N};
    const dnnl::memory::desc d({M, N}, dt::f32, tag::ab);
    const auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
    const dnnl::softmax_v2_forward::primitive_desc fpd({dnnl::prop_kind::forward_training, alg, d, d, 1}, eng);
    const dnnl::softmax_v2_backward::primitive_desc bpd({alg, d, d, d, 1}, eng, fpd);
    fvec dnn_y(x.size()), dnn_dx(x.size());
    dnnl::memory xm(d, eng, x.data()), ym(d, eng, dnn_y.data()), dym(d, eng, dy.data()), dxm(d, eng, dnn_dx.data());
    dnn_call fwd{dnnl::softmax_v2_forward(fpd), {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DST, ym}}, &strm};
    dnn_call bwd{dnnl::softmax_v2_backward(bpd), {{DNNL_ARG_DST, ym}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_SRC, dxm}}, &strm};
    const double bytes = double(M * N) * 4;
    const std::string shape = std::string(s.name) + " (" + std::to_string(M) + "x" + std::to_string(N) + ")";
    const char* op = log ? "logsoftmax" : "softmax";
    auto t = interleaved({[&] { k.forward(X, Y); }, std::ref(fwd)}, reps_for(2 * bytes));
    rows.push_back({op, shape, "fwd", 2 * bytes, t[0], t[1]});
    print(rows.back());
    t = interleaved({[&] { k.backward(DY, YC, DX); }, std::ref(bwd)}, reps_for(3 * bytes));
    rows.push_back({op, shape, "bwd", 3 * bytes, t[0], t[1]});
    print(rows.back());
  };
  for (const auto& s : sm_shapes)
    s.kind == tpp::softmax_kind::softmax ? softmax_rows.template operator()<tpp::softmax_kind::softmax>(s)
                                         : softmax_rows.template operator()<tpp::softmax_kind::log_softmax>(s);

  std::printf("\nspeed = oneDNN time / tpp time, geomean (worst):");
  for (const char* op : {"batchnorm", "layernorm", "softmax", "logsoftmax"}) {
    double ls = 0, worst = 1e9;
    int n = 0;
    for (const auto& r : rows)
      if (r.op == op) ls += std::log(r.speed()), worst = std::min(worst, r.speed()), ++n;
    if (n > 0) std::printf("  %s %.2fx (%.2fx, %d)", op, std::exp(ls / n), worst, n);
  }
  std::printf("\n");
  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"results\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      f << "  {\"op\": \"" << r.op << "\", \"shape\": \"" << r.shape << "\", \"dir\": \"" << r.dir
        << "\", \"bytes\": " << r.bytes << ", \"tpp_s\": " << r.t_tpp << ", \"onednn_s\": " << r.t_dnn << "}"
        << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    f << "]}\n";
  }
  return 0;
}
