#!/usr/bin/env bash
# install_consumer test: installs tpp from the build tree into a scratch prefix, then configures, builds
# and runs an outside project with find_package(tpp) and with pkg-config.
set -euo pipefail
src=$1 build=$2 cxx=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$src/test/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$work/consumer" > /dev/null
"$work/consumer/consumer"
# pkg-config users
PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --exists tpp
"$cxx" $(PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --cflags tpp) -O2 "$src/test/consumer/main.cpp" \
      $(PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --libs tpp) -o "$work/consumer_pc"
"$work/consumer_pc"
