// tpp_train's SVG training curves (examples/train/plot.hpp): the file is well-formed XML with escaped labels,
// one line per curve in each panel, a legend entry per curve, and no NaN or infinity in any coordinate.

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "plot.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace tpp_train;

namespace {

using tpp_train::test::temp_dir;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + part.size())) ++n;
  return n;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Checks that the document is one element of properly nested tags, that text and attribute values contain no raw
// '<' or '&' that is not an entity, and that attribute values are quoted. Returns "" or what is wrong.
std::string xml_problem(const std::string& doc) {
  std::vector<std::string> open;
  std::size_t i = 0, roots = 0;
  const auto bad_text = [](const std::string& text) -> std::string {
    for (std::size_t k = 0; k < text.size(); ++k) {
      if (text[k] == '<' || text[k] == '>') return "raw '" + std::string(1, text[k]) + "' in text";
      if (text[k] == '&') {
        const std::size_t semi = text.find(';', k);
        const std::string entity = semi == std::string::npos ? "" : text.substr(k, semi - k + 1);
        if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&apos;")
          return "bare '&' in text";
      }
    }
    return "";
  };
  while (i < doc.size()) {
    const std::size_t lt = doc.find('<', i);
    const std::string text = doc.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    if (const std::string p = bad_text(text); !p.empty()) return p + ": " + text;
    if (lt == std::string::npos) break;
    if (open.empty() && text.find_first_not_of(" \n") != std::string::npos) return "text outside the root element";
    // The tag runs to the first '>' outside quotes.
    std::size_t k = lt + 1;
    char quote = 0;
    std::string attribute_values;
    for (; k < doc.size() && (quote || doc[k] != '>'); ++k) {
      if (quote && doc[k] == quote) quote = 0;
      else if (quote) attribute_values += doc[k];
      else if (doc[k] == '"' || doc[k] == '\'') quote = doc[k];
      else if (doc[k] == '<') return "'<' inside a tag";
    }
    if (k == doc.size()) return "unterminated tag";
    if (const std::string p = bad_text(attribute_values); !p.empty()) return p + " (attribute)";
    const std::string tag = doc.substr(lt + 1, k - lt - 1);
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" \n/", 1) - (tag[0] == '/'));
    if (tag[0] == '/') {
      if (open.empty() || open.back() != name) return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
      open.pop_back();
    } else if (tag.back() != '/') {
      if (open.empty()) ++roots;
      open.push_back(name);
    } else if (open.empty()) {
      ++roots;
    }
    i = k + 1;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return std::to_string(roots) + " root elements";
  return "";
}

// Every number in the document's attributes parses as a finite value (no "nan", "inf").
bool all_coordinates_finite(const std::string& doc) {
  for (const char* word : {"nan", "inf", "NaN", "Inf", "INF"})
    for (std::size_t at = doc.find(word); at != std::string::npos; at = doc.find(word, at + 1)) {
      // Allowed only inside text content (a label), i.e. after a '>' with no '<' between.
      const std::size_t gt = doc.rfind('>', at), lt = doc.rfind('<', at);
      if (gt == std::string::npos || (lt != std::string::npos && lt > gt)) return false;
    }
  return true;
}

std::vector<curve> sample_curves(int n, std::size_t epochs) {
  std::vector<curve> cs;
  for (int i = 0; i < n; ++i) {
    curve c{"policy " + std::to_string(i), {}, {}};
    for (std::size_t e = 1; e <= epochs; ++e) {
      c.train_loss.push_back(0.3 + 1.0 / static_cast<double>(e) + 0.01 * i);
      c.test_accuracy.push_back(0.9 - 0.2 / static_cast<double>(e) - 0.001 * i);
    }
    cs.push_back(c);
  }
  return cs;
}

}  // namespace

TEST_CASE("write_svg: well-formed, one line per curve per panel, a legend entry per curve, labels escaped") {
  temp_dir dir;
  std::vector<curve> cs = sample_curves(4, 10);
  cs[0].label = "mitchell<7>";
  cs[1].label = "a & b";
  cs[2].label = "\"quoted\" 'label'";
  const std::string p = dir / "curves.svg";
  write_svg(p, "LeNet-5 <fashion> & friends", cs);
  const std::string svg = read_text(p);
  CHECK(svg.rfind("<svg ", 0) == 0);
  CHECK(svg.size() >= 7);
  CHECK(svg.substr(svg.find_last_not_of("\n") - 5, 6) == "</svg>");
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "<path class=\"line\"") == 2 * cs.size());
  CHECK(count(svg, "<g class=\"curve\"") == 2 * cs.size());
  CHECK(count(svg, "<g class=\"entry\">") == cs.size());
  CHECK(contains(svg, ">mitchell&lt;7&gt;</text>"));
  CHECK(contains(svg, ">a &amp; b</text>"));
  CHECK(contains(svg, ">&quot;quoted&quot; &apos;label&apos;</text>"));
  CHECK(contains(svg, ">policy 3</text>"));
  CHECK(!contains(svg, "mitchell<7>"));
  CHECK(!contains(svg, "a & b"));
  CHECK(contains(svg, ">LeNet-5 &lt;fashion&gt; &amp; friends</text>"));
  // Axis labels, and the ten epochs as ticks.
  CHECK(contains(svg, ">epoch</text>"));
  CHECK(contains(svg, ">train loss</text>"));
  CHECK(contains(svg, ">test accuracy (%)</text>"));
  CHECK(count(svg, "text-anchor=\"middle\">10</text>") == 2);
  // Each line has a point per epoch: one moveto and nine linetos.
  const std::size_t d = svg.find("<path class=\"line\" d=\"");
  const std::string path = svg.substr(d, svg.find('"', d + 22) - d);
  CHECK(count(path, "M") == 1);
  CHECK(count(path, "L") == 9);
  CHECK(all_coordinates_finite(svg));
}

TEST_CASE("write_svg: NaN and infinite losses are left out and the legend says the curve diverged") {
  temp_dir dir;
  std::vector<curve> cs = sample_curves(3, 6);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  cs[1].train_loss[3] = inf;
  cs[1].train_loss[4] = nan;
  cs[1].train_loss[5] = nan;
  cs[1].test_accuracy[4] = nan;
  cs[2].train_loss[2] = nan;  // a gap: the line breaks and resumes
  const std::string p = dir / "nan.svg";
  write_svg(p, "diverging", cs);
  const std::string svg = read_text(p);
  CHECK(xml_problem(svg) == "");
  CHECK(all_coordinates_finite(svg));
  CHECK(contains(svg, ">policy 1 (diverged at epoch 4)</text>"));
  CHECK(contains(svg, ">policy 2 (diverged at epoch 3)</text>"));
  CHECK(contains(svg, ">policy 0</text>"));
  // Curve 2's loss line: two runs (epochs 1-2 and 4-6).
  const std::size_t g = svg.find("<g class=\"curve\" data-index=\"2\">");
  REQUIRE(g != std::string::npos);
  const std::size_t d = svg.find(" d=\"", g) + 4;
  const std::string path = svg.substr(d, svg.find('"', d) - d);
  CHECK(count(path, "M") == 2);
  CHECK(count(path, "L") == 3);

  // Nothing plottable at all still gives a valid file with empty lines.
  write_svg(p, "all NaN", {{"x", {nan, inf}, {nan}}});
  const std::string empty = read_text(p);
  CHECK(xml_problem(empty) == "");
  CHECK(all_coordinates_finite(empty));
  CHECK(contains(empty, ">x (diverged at epoch 1)</text>"));
  CHECK(count(empty, "no data") == 2);
}

TEST_CASE("write_svg: one epoch, curves of different lengths, no curves") {
  temp_dir dir;
  const std::string p = dir / "shapes.svg";
  write_svg(p, "one epoch", {{"exact", {0.5}, {0.85}}, {"bf16_rz", {0.52}, {0.84}}});
  std::string svg = read_text(p);
  CHECK(xml_problem(svg) == "");
  CHECK(all_coordinates_finite(svg));
  CHECK(count(svg, "<path class=\"line\" d=\"M") == 4);
  CHECK(count(svg, "text-anchor=\"middle\">1</text>") == 2);  // the one epoch tick in each panel

  write_svg(p, "lengths", {{"long", {1, 0.8, 0.7, 0.65, 0.6}, {0.7, 0.8, 0.85, 0.86, 0.87}}, {"short", {1.1}, {}}});
  svg = read_text(p);
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "text-anchor=\"middle\">5</text>") == 2);  // the axis runs to the longest curve
  CHECK(count(svg, "<g class=\"entry\">") == 2);

  write_svg(p, "nothing yet", {});
  svg = read_text(p);
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "<g class=\"entry\">") == 0);
}

TEST_CASE("write_svg: twelve curves get twelve colours and a legend entry each") {
  temp_dir dir;
  const std::string p = dir / "twelve.svg";
  const std::vector<curve> cs = sample_curves(12, 20);
  write_svg(p, "twelve", cs);
  const std::string svg = read_text(p);
  CHECK(xml_problem(svg) == "");
  std::set<std::string> colours;
  for (std::size_t at = svg.find("<path class=\"line\""); at != std::string::npos;
       at = svg.find("<path class=\"line\"", at + 1)) {
    const std::size_t s = svg.find("stroke=\"", at) + 8;
    colours.insert(svg.substr(s, svg.find('"', s) - s));
  }
  CHECK(colours.size() == 12);
  CHECK(count(svg, "<g class=\"entry\">") == 12);
  for (const curve& c : cs) CHECK(contains(svg, ">" + c.label + "</text>"));
}

TEST_CASE("write_svg: an unwritable path is an input_error naming it") {
  temp_dir dir;
  const std::string p = dir / "no/such/dir/plot.svg";
  std::string message = "(no error)";
  try {
    write_svg(p, "t", sample_curves(1, 2));
  } catch (const input_error& e) {
    message = e.what();
  }
  CHECK(message == p + ": cannot open for writing: No such file or directory");
}

TEST_CASE("xml_problem finds what it checks for") {
  // The checker above must be able to fail, or the tests built on it prove nothing.
  CHECK(xml_problem("<svg><g></g></svg>") == "");
  CHECK(xml_problem("<svg><g></svg>") != "");
  CHECK(xml_problem("<svg><text>a<b</text></svg>") != "");
  CHECK(xml_problem("<svg><text>a & b</text></svg>") != "");
  CHECK(xml_problem("<svg><text x=\"<\">a</text></svg>") != "");
  CHECK(xml_problem("<svg/><svg/>") != "");
  CHECK(!all_coordinates_finite("<svg><circle cx=\"nan\"/></svg>"));
  CHECK(all_coordinates_finite("<svg><text>nan</text></svg>"));
}
