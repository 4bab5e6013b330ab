#pragma once
// tpp_train's training curves as one SVG file: two panels side by side, the training loss and the test
// accuracy (%) per epoch, one coloured line with point markers per curve, a legend with every label, a title.
//
//   write_svg(path, title, curves)   throws input_error ("<path>: ...") when the file cannot be written
//
// Handles curves of different lengths, a single epoch, up to 12 curves in distinct colours (more reuse the
// colours, the marker shapes still differ), labels with XML's special characters (mitchell<7>), and losses
// that are NaN, infinite or beyond 1e12: such a point is left out, the line breaks there, and the legend
// says "diverged at epoch N".

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "idx.hpp"  // input_error

namespace tpp_train {

struct curve {
  std::string label;
  std::vector<double> train_loss;     // one per epoch 1..E
  std::vector<double> test_accuracy;  // one per epoch 1..E, a fraction in 0..1 (as in --json); plotted in %
};

namespace detail {

// Text and attribute values for XML.
inline std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters other than tab are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

inline std::string num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// A value the plot can show: losses beyond this are divergence, not a scale worth squashing the rest for.
inline bool plottable(double v) { return std::isfinite(v) && std::abs(v) <= 1e12; }

// A linear axis over [lo, hi] with ticks at multiples of a 1-2-5 step.
struct axis {
  double lo = 0, hi = 1, step = 0.2;
  std::vector<double> ticks;
};

inline double nice_step(double span, int target) {
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

// An axis covering the data [lo, hi], widened to whole steps.
inline axis value_axis(double lo, double hi, int target) {
  if (!(lo <= hi)) lo = 0, hi = 1;  // no data
  if (hi - lo < 1e-9 * std::max(1.0, std::abs(hi))) {
    const double pad = std::max(std::abs(hi) * 0.05, 0.01);
    lo -= pad;
    hi += pad;
  }
  axis a;
  a.step = nice_step(hi - lo, target);
  a.lo = std::floor(lo / a.step) * a.step;
  a.hi = std::ceil(hi / a.step) * a.step;
  for (double k = std::round(a.lo / a.step); k <= std::round(a.hi / a.step); ++k) a.ticks.push_back(k * a.step);
  return a;
}

// Epochs 1..epochs, ticks on whole epochs (1 is always labelled).
inline axis epoch_axis(std::size_t epochs) {
  axis a;
  const double e = static_cast<double>(std::max<std::size_t>(epochs, 1));
  if (e == 1) {
    a.lo = 0.5, a.hi = 1.5, a.step = 1, a.ticks = {1};
    return a;
  }
  a.lo = 1, a.hi = e;
  a.step = std::max(1.0, nice_step(e - 1, 8));
  a.ticks.push_back(1);
  for (double t = a.step; t <= e; t += a.step)
    if (t > 1) a.ticks.push_back(t);
  return a;
}

inline std::string tick_text(double v, double step) {
  if (std::abs(v) < step * 1e-6) v = 0;  // no "-0.0"
  char buf[64];
  if (step >= 1e6 || step < 1e-6) {
    std::snprintf(buf, sizeof buf, "%g", v);
  } else {
    const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

// Distinct on white and from each other; index 11 onwards repeat (the marker shapes still tell them apart).
inline const char* curve_colour(std::size_t i) {
  static constexpr const char* palette[12] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                              "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#000080"};
  return palette[i % 12];
}

// A marker of shape i % 4 (circle, square, triangle, diamond) centred on (x, y), radius r.
inline std::string marker(std::size_t i, double x, double y, double r, const char* colour) {
  const std::string fill = concat(" fill=\"", colour, "\"/>");
  switch (i % 4) {
    case 0: return concat("<circle cx=\"", num(x), "\" cy=\"", num(y), "\" r=\"", num(r), "\"", fill);
    case 1:
      return concat("<rect x=\"", num(x - 0.9 * r), "\" y=\"", num(y - 0.9 * r), "\" width=\"", num(1.8 * r),
                    "\" height=\"", num(1.8 * r), "\"", fill);
    case 2:
      return concat("<path d=\"M", num(x), " ", num(y - 1.2 * r), "L", num(x + 1.1 * r), " ", num(y + 0.8 * r), "L",
                    num(x - 1.1 * r), " ", num(y + 0.8 * r), "Z\"", fill);
    default:
      return concat("<path d=\"M", num(x), " ", num(y - 1.3 * r), "L", num(x + 1.1 * r), " ", num(y), "L", num(x),
                    " ", num(y + 1.3 * r), "L", num(x - 1.1 * r), " ", num(y), "Z\"", fill);
  }
}

// Page geometry (px).
struct layout {
  static constexpr double width = 1000, panel_width = 500;
  static constexpr double frame_left = 85, frame_right = 25;  // inside each panel
  static constexpr double frame_top = 58, frame_height = 300;
  static constexpr double inset = 10;                          // between the frame and the data
  static constexpr double legend_top = frame_top + frame_height + 62, legend_row = 22;
  static constexpr double char_width = 7.2;                    // estimate at 12 px, for the legend's columns
};

// One panel: frame, grid, ticks, axis labels and every curve's line and markers.
inline void write_panel(std::string& svg, double left, const std::string& y_label, const axis& x, const axis& y,
                        const std::vector<std::vector<double>>& series, std::size_t epochs) {
  using L = layout;
  const double fx0 = left + L::frame_left, fx1 = left + L::panel_width - L::frame_right;
  const double fy0 = L::frame_top, fy1 = L::frame_top + L::frame_height;
  const auto px = [&](double v) { return fx0 + L::inset + (v - x.lo) / (x.hi - x.lo) * (fx1 - fx0 - 2 * L::inset); };
  const auto py = [&](double v) { return fy1 - L::inset - (v - y.lo) / (y.hi - y.lo) * (fy1 - fy0 - 2 * L::inset); };

  svg += "<g class=\"panel\">\n";
  std::size_t widest = 0;
  for (const double t : y.ticks) {
    const std::string text = tick_text(t, y.step);
    widest = std::max(widest, text.size());
    svg += concat("<line x1=\"", num(fx0), "\" y1=\"", num(py(t)), "\" x2=\"", num(fx1), "\" y2=\"", num(py(t)),
                  "\" stroke=\"#e4e4e4\"/>\n<text x=\"", num(fx0 - 6), "\" y=\"", num(py(t) + 4),
                  "\" text-anchor=\"end\">", text, "</text>\n");
  }
  for (const double t : x.ticks)
    svg += concat("<line x1=\"", num(px(t)), "\" y1=\"", num(fy0), "\" x2=\"", num(px(t)), "\" y2=\"", num(fy1),
                  "\" stroke=\"#e4e4e4\"/>\n<line x1=\"", num(px(t)), "\" y1=\"", num(fy1), "\" x2=\"", num(px(t)),
                  "\" y2=\"", num(fy1 + 5), "\" stroke=\"#333\"/>\n<text x=\"", num(px(t)), "\" y=\"",
                  num(fy1 + 19), "\" text-anchor=\"middle\">", tick_text(t, 1), "</text>\n");
  svg += concat("<rect x=\"", num(fx0), "\" y=\"", num(fy0), "\" width=\"", num(fx1 - fx0), "\" height=\"",
                num(fy1 - fy0), "\" fill=\"none\" stroke=\"#333\"/>\n");
  svg += concat("<text x=\"", num((fx0 + fx1) / 2), "\" y=\"", num(fy1 + 40),
                "\" text-anchor=\"middle\" font-size=\"13\">epoch</text>\n");
  const double label_x = fx0 - 14 - static_cast<double>(widest) * L::char_width;
  svg += concat("<text x=\"", num(label_x), "\" y=\"", num((fy0 + fy1) / 2), "\" transform=\"rotate(-90 ",
                num(label_x), " ", num((fy0 + fy1) / 2), ")\" text-anchor=\"middle\" font-size=\"13\">", y_label,
                "</text>\n");

  if (std::none_of(series.begin(), series.end(), [](const std::vector<double>& s) {
        return std::any_of(s.begin(), s.end(), plottable);
      }))
    svg += concat("<text x=\"", num((fx0 + fx1) / 2), "\" y=\"", num((fy0 + fy1) / 2),
                  "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n");

  // Markers shrink when the epochs crowd them.
  const double r = std::clamp((fx1 - fx0 - 2 * L::inset) / static_cast<double>(std::max<std::size_t>(epochs, 1)) / 3,
                              1.5, 3.5);
  for (std::size_t c = 0; c < series.size(); ++c) {
    const char* colour = curve_colour(c);
    std::string d, markers;
    bool pen_down = false;
    for (std::size_t e = 0; e < series[c].size(); ++e) {
      const double v = series[c][e];
      if (!plottable(v)) {
        pen_down = false;  // the line breaks at a left-out point
        continue;
      }
      const double xv = px(static_cast<double>(e + 1)), yv = py(v);
      d += concat(pen_down ? "L" : "M", num(xv), " ", num(yv));
      pen_down = true;
      markers += marker(c, xv, yv, r, colour);
      markers += '\n';
    }
    svg += concat("<g class=\"curve\" data-index=\"", std::to_string(c), "\">\n<path class=\"line\" d=\"", d,
                  "\" fill=\"none\" stroke=\"", colour, "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n",
                  markers, "</g>\n");
  }
  svg += "</g>\n";
}

}  // namespace detail

inline void write_svg(const std::string& path, const std::string& title, const std::vector<curve>& curves) {
  using L = detail::layout;
  using detail::concat, detail::num, detail::xml_escape;

  // Data ranges; the accuracy panel is in percent.
  std::size_t epochs = 0;
  constexpr double inf = std::numeric_limits<double>::infinity();
  double loss_lo = inf, loss_hi = -inf, acc_lo = inf, acc_hi = -inf;
  std::vector<std::vector<double>> losses, accuracies;
  for (const curve& c : curves) {
    epochs = std::max({epochs, c.train_loss.size(), c.test_accuracy.size()});
    losses.push_back(c.train_loss);
    accuracies.emplace_back();
    for (const double v : c.test_accuracy) accuracies.back().push_back(v * 100);
    for (const double v : losses.back())
      if (detail::plottable(v)) loss_lo = std::min(loss_lo, v), loss_hi = std::max(loss_hi, v);
    for (const double v : accuracies.back())
      if (detail::plottable(v)) acc_lo = std::min(acc_lo, v), acc_hi = std::max(acc_hi, v);
  }
  const detail::axis x = detail::epoch_axis(epochs);
  const detail::axis loss_axis = detail::value_axis(loss_lo, loss_hi, 6);
  const detail::axis acc_axis = detail::value_axis(acc_lo, acc_hi, 6);

  // Legend entries, laid out in equal columns.
  std::vector<std::string> entries;
  std::size_t longest = 0;
  for (const curve& c : curves) {
    std::string text = c.label;
    for (std::size_t e = 0; e < c.train_loss.size(); ++e)
      if (!detail::plottable(c.train_loss[e])) {
        text += concat(" (diverged at epoch ", std::to_string(e + 1), ")");
        break;
      }
    longest = std::max(longest, text.size());
    entries.push_back(std::move(text));
  }
  const double entry_width = 44 + static_cast<double>(longest) * L::char_width;
  const std::size_t columns = std::clamp<std::size_t>(static_cast<std::size_t>((L::width - 80) / entry_width), 1,
                                                      std::max<std::size_t>(entries.size(), 1));
  const std::size_t rows = (entries.size() + columns - 1) / columns;
  const double height = L::legend_top + static_cast<double>(rows) * L::legend_row + 12;
  const double column_width = std::min(entry_width + 24, (L::width - 80) / static_cast<double>(columns));

  std::string svg = concat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", num(L::width, 0), "\" height=\"",
                           num(height, 0), "\" viewBox=\"0 0 ", num(L::width, 0), " ", num(height, 0),
                           "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\" "
                           "fill=\"#222\">\n<title>",
                           xml_escape(title), "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  svg += concat("<text x=\"", num(L::width / 2), "\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" "
                "font-weight=\"bold\">", xml_escape(title), "</text>\n");
  detail::write_panel(svg, 0, "train loss", x, loss_axis, losses, epochs);
  detail::write_panel(svg, L::panel_width, "test accuracy (%)", x, acc_axis, accuracies, epochs);

  svg += "<g class=\"legend\">\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const double ex = 40 + static_cast<double>(i % columns) * column_width;
    const double ey = L::legend_top + static_cast<double>(i / columns) * L::legend_row;
    const char* colour = detail::curve_colour(i);
    svg += concat("<g class=\"entry\">\n<line x1=\"", num(ex), "\" y1=\"", num(ey), "\" x2=\"", num(ex + 28),
                  "\" y2=\"", num(ey), "\" stroke=\"", colour, "\" stroke-width=\"2\"/>\n",
                  detail::marker(i, ex + 14, ey, 3.5, colour), "\n<text x=\"", num(ex + 36), "\" y=\"", num(ey + 4),
                  "\">", xml_escape(entries[i]), "</text>\n</g>\n");
  }
  svg += "</g>\n</svg>\n";

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw input_error(concat(path, ": cannot open for writing: ", std::strerror(errno)));
  out.write(svg.data(), static_cast<std::streamsize>(svg.size()));
  out.close();
  if (!out) throw input_error(concat(path, ": write error: ", std::strerror(errno)));
}

}  // namespace tpp_train
