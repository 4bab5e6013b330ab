// The doctest runner of tpp_train's tests (idx.cpp, plot.cpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
