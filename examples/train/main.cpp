// tpp_train: trains LeNet-5 or LeNet-300-100 on Fashion-MNIST with a chosen multiplier in every product of
// forward and backward (DESIGN.md 3c), or several multipliers in turn (--compare), and reports the loss,
// test accuracy and speed per epoch, as a table, JSON and an SVG plot. `tpp_train --help` lists the flags.
// Bad input (a flag, a number, a file) is one line on stderr and exit code 2.

#include <omp.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tpp/approx/amsim.hpp>

#include "plot.hpp"
#include "trainer.hpp"

namespace tpp_train {
// Set by mpi.cpp when tpp_train is built with MPI: makes the world communicator (nullptr: one process).
std::unique_ptr<communicator> make_world(int& argc, char**& argv);
}  // namespace tpp_train

namespace {

using namespace tpp_train;

constexpr const char* usage = R"(usage: tpp_train [options]
  --model lenet5|lenet300     the network (default lenet5)
  --multiplier NAME           a registered multiplier (default exact; --list prints them)
  --lut FILE                  an ApproxTrain AMSim table (MBM_7.bin, ...) as the multiplier
  --compare A,B,...           train with each multiplier in turn (names, or .bin table files) and compare
  --backward approx|exact     backward products through the multiplier (default) or exact (straight-through)
  --format F                  fp32 (default), bf16 or fixed<IL,FL> (IL integer bits with the sign, FL fractional,
                              IL + FL <= 32): weights, activations and gradients rounded to it (Gupta et al. 2015);
                              binary: a QNN (Hubara et al.), sign weights and activations in the hidden layers
  --rounding nearest|stochastic  the format's rounding (default nearest; stochastic: reproducible from --seed)
  --epochs E                  default 3
  --batch B                   default 64
  --lr L                      default 0.01 (sgd), 0.001 (adam)
  --optimizer sgd|adam        default sgd (momentum 0.9)
  --momentum M                default 0.9
  --weight-decay W            default 0
  --schedule cosine|constant  learning-rate schedule over the run (default cosine)
  --seed S                    default 1
  --threads T                 OpenMP threads (default: OMP_NUM_THREADS or all cores)
  --limit N                   train on the first N training images only
  --data DIR                  IDX files (default /usr/share/datasets/fashion-mnist)
  --json FILE                 write the results as JSON
  --plot FILE.svg             write loss and accuracy curves
  --quiet                     no progress bar
  --list                      print the registered multipliers and exit
)";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct options {
  config cfg;
  std::vector<std::string> multipliers{"exact"};
  std::string data = "/usr/share/datasets/fashion-mnist", json, plot;
  int threads = 0;
  bool quiet = false, list = false, lr_given = false, rounding_given = false;
};

template <class T>
T number(std::string_view flag, std::string_view text, T lo, T hi) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || !(v >= lo && v <= hi) ||
      (std::is_floating_point_v<T> && !std::isfinite(double(v))))
    throw usage_error(std::string(flag) + " takes a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "], not '" + std::string(text) + "'");
  return v;
}

// "exact,mitchell<7>,lut<mitchell,7>" -> its names (commas inside <> belong to a name).
std::vector<std::string> split_names(std::string_view list) {
  std::vector<std::string> names;
  std::string cur;
  int depth = 0;
  for (char ch : list) {
    depth += ch == '<' ? 1 : ch == '>' ? -1 : 0;
    if (ch == ',' && depth == 0) {
      names.push_back(cur), cur.clear();
    } else {
      cur += ch;
    }
  }
  names.push_back(cur);
  for (const std::string& n : names)
    if (n.empty()) throw usage_error("--compare has an empty name in '" + std::string(list) + "'");
  return names;
}

options parse(int argc, char** argv) {
  options o;
  bool chose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (a == "--quiet") { o.quiet = true; continue; }
    if (a == "--list") { o.list = true; continue; }
    if (a.substr(0, 2) != "--") throw usage_error("unexpected argument '" + std::string(a) + "' (see --help)");
    if (i + 1 >= argc) throw usage_error(std::string(a) + " needs a value");
    const std::string_view v = argv[++i];
    const auto one_of = [&](std::initializer_list<std::string_view> ok) {
      for (std::string_view s : ok)
        if (v == s) return;
      std::string all;
      for (std::string_view s : ok) all += (all.empty() ? "" : ", ") + std::string(s);
      throw usage_error(std::string(a) + " takes one of " + all + ", not '" + std::string(v) + "'");
    };
    const auto choose = [&](std::vector<std::string> m) {
      if (chose) throw usage_error("give only one of --multiplier, --lut and --compare");
      chose = true;
      o.multipliers = std::move(m);
    };
    if (a == "--model") {
      one_of({"lenet5", "lenet300"});
      o.cfg.model = parse_model(std::string(v));
    } else if (a == "--multiplier") {
      choose({std::string(v)});
    } else if (a == "--lut") {
      choose({std::string(v)});
      o.multipliers.back().insert(0, "file:");
    } else if (a == "--compare") {
      choose(split_names(v));
    } else if (a == "--backward") {
      one_of({"approx", "exact"});
      o.cfg.exact_backward = v == "exact";
    } else if (a == "--format") {
      const tpp::rounding r = o.cfg.format.rounding;
      o.cfg.format = parse_format(std::string(v));
      o.cfg.format.rounding = r;
    } else if (a == "--rounding") {
      o.cfg.format.rounding = parse_rounding(std::string(v));
      o.rounding_given = true;
    } else if (a == "--epochs") {
      o.cfg.epochs = number<int>(a, v, 1, 10000);
    } else if (a == "--batch") {
      o.cfg.batch = number<index_t>(a, v, 1, 65536);
    } else if (a == "--lr") {
      o.cfg.lr = number<double>(a, v, 1e-12, 1e3);
      o.lr_given = true;
    } else if (a == "--optimizer") {
      one_of({"sgd", "adam"});
      o.cfg.optimizer = v == "sgd" ? optimizer_kind::sgd : optimizer_kind::adam;
    } else if (a == "--momentum") {
      o.cfg.momentum = number<double>(a, v, 0.0, 0.999999);
    } else if (a == "--weight-decay") {
      o.cfg.weight_decay = number<double>(a, v, 0.0, 1.0);
    } else if (a == "--schedule") {
      one_of({"cosine", "constant"});
      o.cfg.cosine = v == "cosine";
    } else if (a == "--seed") {
      o.cfg.seed = number<std::uint64_t>(a, v, 0, std::numeric_limits<std::uint64_t>::max());
    } else if (a == "--threads") {
      o.threads = number<int>(a, v, 1, 4096);
    } else if (a == "--limit") {
      o.cfg.limit = number<index_t>(a, v, 1, std::numeric_limits<std::int32_t>::max());
    } else if (a == "--data") {
      o.data = v;
    } else if (a == "--json") {
      o.json = v;
    } else if (a == "--plot") {
      o.plot = v;
    } else {
      throw usage_error("unknown flag '" + std::string(a) + "' (see --help)");
    }
  }
  if (o.cfg.optimizer == optimizer_kind::adam && !o.lr_given) o.cfg.lr = 1e-3;
  if (o.rounding_given && o.cfg.format.rounding == tpp::rounding::stochastic && !o.cfg.format.rounds())
    throw usage_error("--rounding stochastic needs a --format that rounds (bf16 or fixed<IL,FL>), not " +
                      name(o.cfg.format));
  return o;
}

std::string registered_names() {
  std::string s;
  for (const auto& [name, fn] : trainers())
    if (name != "amsim") s += (s.empty() ? "" : ", ") + name;
  return s;
}

// A multiplier named on the command line: a registered name, or an AMSim table file ("file:" from --lut,
// or a --compare entry ending in .bin). Only one table file per process (approx::amsim is process-wide).
struct choice {
  std::string label;
  trainer_fn fn;
};
choice resolve(const std::string& name, std::string& table) {
  const bool file = name.starts_with("file:") || name.ends_with(".bin");
  if (!file) {
    const auto it = trainers().find(name);
    if (it == trainers().end())
      throw usage_error("unknown multiplier '" + name + "' (registered: " + registered_names() +
                        "; or a .bin table file)");
    return {name, it->second};
  }
  const std::string path = name.starts_with("file:") ? name.substr(5) : name;
  if (!table.empty() && table != path) throw usage_error("only one table file per run: " + table + " and " + path);
  if (table.empty()) tpp::approx::amsim_model::install(tpp::approx::amsim_table::read(path));
  table = path;
  return {tpp::approx::amsim::name(), trainers().at("amsim")};
}

void write_json(std::ostream& f, const run_result& r, const options& o, int threads) {
  const auto num = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string("null"); };
  f << "{\"model\": \"" << r.model << "\", \"multiplier\": \"" << r.multiplier << "\", \"backward\": \""
    << (r.exact_backward ? "exact" : "approx") << "\", \"format\": \"" << name(o.cfg.format)
    << "\", \"rounding\": \"" << rounding_name(o.cfg.format.rounding) << "\", \"batch\": " << o.cfg.batch << ", \"lr\": " << o.cfg.lr
    << ", \"optimizer\": \"" << (o.cfg.optimizer == optimizer_kind::sgd ? "sgd" : "adam")
    << "\", \"seed\": " << o.cfg.seed << ", \"threads\": " << threads
    << ", \"test_accuracy\": " << num(r.test_accuracy()) << ", \"epochs\": [";
  for (std::size_t i = 0; i < r.epochs.size(); ++i) {
    const epoch_result& e = r.epochs[i];
    f << (i ? ", " : "") << "{\"epoch\": " << e.epoch << ", \"train_loss\": " << num(e.train_loss)
      << ", \"test_accuracy\": " << num(e.test_accuracy) << ", \"seconds\": " << num(e.seconds)
      << ", \"images_per_second\": " << num(e.images_per_second) << "}";
  }
  f << "]}";
}

// The progress bar: redrawn in place on a terminal; nothing but the epoch rows otherwise.
struct progress {
  bool on;
  int epochs;
  void operator()(int epoch, index_t step, index_t steps, double ips) const {
    if (!on) return;
    constexpr int width = 30;
    const int done = int(double(width) * double(step) / double(steps));
    std::fprintf(stderr, "\r  epoch %d/%d [%s%s] %3d%%  %7.0f images/s ", epoch, epochs, std::string(std::size_t(done), '#').c_str(),
                 std::string(std::size_t(width - done), '.').c_str(), int(100 * step / steps), ips);
    if (step == steps) std::fprintf(stderr, "\r%*s\r", width + 50, "");
    std::fflush(stderr);
  }
};

int run(int argc, char** argv) {
  std::unique_ptr<communicator> world = make_world(argc, argv);
  const options o = parse(argc, argv);
  const bool root = !world || world->rank == 0;
  if (o.list) {
    if (root)
      for (const auto& [name, fn] : trainers())
        if (name != "amsim") std::printf("%s\n", name.c_str());
    return 0;
  }
  std::string table;
  std::vector<choice> runs;
  for (const std::string& m : o.multipliers) runs.push_back(resolve(m, table));
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const int threads = omp_get_max_threads();

  const dataset data = load_dataset(o.data);
  config cfg = o.cfg;
  cfg.comm = world.get();
  const int ranks = world ? world->size : 1;
  if (root)
    std::printf("tpp_train: %s on %s (%lld training images%s, %lld test), batch %lld, %s lr %g%s, %d thread%s%s\n",
                name(cfg.model), o.data.c_str(), (long long)data.train.count,
                cfg.limit > 0 ? (", first " + std::to_string(std::min(cfg.limit, data.train.count)) + " used").c_str() : "",
                (long long)data.test.count, (long long)cfg.batch, cfg.optimizer == optimizer_kind::sgd ? "sgd" : "adam",
                cfg.lr, cfg.cosine ? " cosine" : "", threads, threads == 1 ? "" : "s",
                ranks > 1 ? (", " + std::to_string(ranks) + " MPI ranks").c_str() : "");
  const progress bar{root && !o.quiet && isatty(fileno(stderr)) != 0, cfg.epochs};
  cfg.on_progress = [&](int e, index_t s, index_t n, double ips) { bar(e, s, n, ips); };

  std::vector<run_result> results;
  for (const choice& c : runs) {
    if (root)
      std::printf("\n%s, backward %s, format %s, rounding %s\n%6s %11s %10s %9s %10s\n", c.label.c_str(),
                  cfg.exact_backward ? "exact" : "approx", name(cfg.format).c_str(), rounding_name(cfg.format.rounding),
                  "epoch", "train loss", "test acc", "seconds", "images/s");
    run_result r = c.fn(cfg, data);
    r.multiplier = c.label;
    if (root)
      for (const epoch_result& e : r.epochs)
        std::printf("%6d %11.4f %9.2f%% %9.2f %10.0f\n", e.epoch, e.train_loss, 100 * e.test_accuracy, e.seconds,
                    e.images_per_second);
    std::fflush(stdout);
    results.push_back(std::move(r));
  }
  if (!root) return 0;

  if (results.size() > 1) {
    const auto per_epoch = [](const run_result& r) {
      double s = 0;
      for (const epoch_result& e : r.epochs) s += e.seconds;
      return s / double(r.epochs.size());
    };
    std::printf("\n%-22s %9s %11s %10s %10s %13s\n", "multiplier", "test acc", "train loss", "s/epoch", "images/s",
                "time / exact");
    const double base = per_epoch(results.front());
    for (const run_result& r : results)
      std::printf("%-22s %8.2f%% %11.4f %10.2f %10.0f %12.2fx\n", r.multiplier.c_str(), 100 * r.test_accuracy(),
                  r.epochs.back().train_loss, per_epoch(r), r.epochs.back().images_per_second, per_epoch(r) / base);
    if (results.front().multiplier != "exact") std::printf("(time / exact: relative to the first row)\n");
  }
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    if (!f) throw input_error(o.json + ": cannot be written");
    if (results.size() == 1) {
      write_json(f, results[0], o, threads);
    } else {
      f << "[\n";
      for (std::size_t i = 0; i < results.size(); ++i) {
        f << (i ? ",\n" : "");
        write_json(f, results[i], o, threads);
      }
      f << "\n]";
    }
    f << "\n";
    if (!f) throw input_error(o.json + ": write failed");
  }
  if (!o.plot.empty()) {
    std::vector<curve> curves;
    for (const run_result& r : results) {
      curve c{r.multiplier + (r.exact_backward ? " (exact bwd)" : ""), {}, {}};
      for (const epoch_result& e : r.epochs) c.train_loss.push_back(e.train_loss), c.test_accuracy.push_back(e.test_accuracy);
      curves.push_back(std::move(c));
    }
    write_svg(o.plot, std::string("tpp_train: ") + name(cfg.model) + " on Fashion-MNIST", curves);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  static_assert(std::tuple_size_v<tpp::approx::tuple_t<tpp::approx::float_policies>> <= TPP_TRAIN_SLOTS,
                "tpp_train: more registered multipliers than policy_slot.cpp slots (TPP_TRAIN_SLOTS in CMake)");
  try {
    return run(argc, argv);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "tpp_train: %s\n", e.what());
  } catch (const input_error& e) {
    std::fprintf(stderr, "tpp_train: %s\n", e.what());
  } catch (const std::invalid_argument& e) {  // tpp::error too: a bad table file, a shape a model rejects
    std::fprintf(stderr, "tpp_train: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tpp_train: internal error: %s\n", e.what());
    return 1;
  }
  return 2;
}
