// tpp_amsim_table: writes the ApproxTrain AMSim table (approx/amsim.hpp: one byte per mantissa pair,
// carry << 7 | the top m bits of the product's mantissa) of a registered multiply policy, for
// `tpp_train --lut FILE` or ApproxTrain itself.
//
//   tpp_amsim_table NAME M FILE
//     NAME  a policy of approx::float_policies as its name() spells it: exact, mitchell<7>, ...
//     M     mantissa bits, 1..7 (the file has 4^M bytes)
//
// Exit status: 0 written; 2 bad arguments or an unknown name (the valid names are listed); 1 the table
// cannot be built (a product outside the format's [1, 4), e.g. mbm<7>'s top corner) or written.

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

#include <tpp/approx/amsim.hpp>
#include <tpp/approx/registry.hpp>

namespace {

std::string policy_names() {
  std::string names;
  tpp::for_each_type(tpp::approx::float_policies{}, [&]<class P>() {
    if (!names.empty()) names += ", ";
    names += P::name();
  });
  return names;
}

int usage(const std::string& what) {
  std::fprintf(stderr, "tpp_amsim_table: %s (usage: tpp_amsim_table NAME M FILE; NAME one of: %s)\n", what.c_str(),
               policy_names().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return usage("expected 3 arguments, got " + std::to_string(argc - 1));
  const std::string name = argv[1], file = argv[3];
  const std::string_view m_arg = argv[2];
  int m = 0;
  const auto [end, ec] = std::from_chars(m_arg.data(), m_arg.data() + m_arg.size(), m);
  if (ec != std::errc() || end != m_arg.data() + m_arg.size() || m < 1 || m > 7)
    return usage("M is \"" + std::string(m_arg) + "\": an integer 1..7 expected");
  if (file.empty()) return usage("FILE is empty");

  try {
    bool found = false;
    tpp::for_each_type(tpp::approx::float_policies{}, [&]<class P>() {
      if (found || P::name() != name) return;
      found = true;
      const auto table = tpp::approx::amsim_table::from_policy<P>(m);
      table.write(file);
      std::printf("%s: %s, m = %d, %zu bytes\n", file.c_str(), name.c_str(), m, table.bytes().size());
    });
    if (!found) return usage("unknown multiplier \"" + name + "\"");
  } catch (const tpp::error& e) {
    std::fprintf(stderr, "tpp_amsim_table: %s\n", e.what());
    return 1;
  }
  return 0;
}
