#pragma once
// Basic vocabulary shared by every tpp header: the index type, type lists, dependent_false.

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tpp {

using index_t = std::int64_t;

// For primary templates that must be specialised: static_assert(dependent_false<T>, "tpp: ...").
template <class...>
inline constexpr bool dependent_false = false;

// A compile-time list of types; the registries (approx/registry.hpp) are type_lists.
template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
};

// Calls f.template operator()<T>() for every T in the list, in order.
template <class... Ts, class F>
constexpr void for_each_type(type_list<Ts...>, F&& f) {
  (f.template operator()<Ts>(), ...);
}

}  // namespace tpp
