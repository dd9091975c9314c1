// Argument checks whose messages are built without iostreams.
//
// On one toolchain (GCC 13.3, Python 3.12, torch 2.11 on a lent H100) a TORCH_CHECK whose message
// streamed a number (c10::str -> std::ostream << double / int64) crashed the process inside the
// error path instead of raising. Here every number is formatted with snprintf into a std::string
// and the finished message is thrown as a c10 error directly: no c10::str, no stream. A part with
// no formatter below is a compile error, so a streamed number cannot creep back in.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <string>
#include <type_traits>

namespace aft_fast {
namespace msg {

template <class T>
inline constexpr bool kNoFormatter = false;

template <class T>
void put(std::string& s, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    s += v ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    s += buf;
  } else if constexpr (std::is_floating_point_v<T>) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    s += buf;
  } else if constexpr (std::is_convertible_v<const T&, const char*>) {
    s += static_cast<const char*>(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    s += v;
  } else if constexpr (std::is_same_v<T, c10::ScalarType>) {
    s += c10::toString(v);
  } else if constexpr (std::is_same_v<T, c10::Device>) {
    s += v.str();
  } else if constexpr (std::is_convertible_v<const T&, c10::IntArrayRef>) {
    const c10::IntArrayRef list = v;
    s += "[";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) s += ", ";
      put(s, list[i]);
    }
    s += "]";
  } else {
    static_assert(kNoFormatter<T>, "aft_fast::msg::put: add a formatter (never stream)");
  }
}

// "op: part part part..." as one string.
template <class... Parts>
std::string join(const char* op, const Parts&... parts) {
  std::string s = op;
  s += ": ";
  (put(s, parts), ...);
  return s;
}

// Out of line and cold: the message is only built when a check fails.
template <class Error, class... Parts>
[[noreturn]] C10_NOINLINE void fail(const char* func, const char* file, uint32_t line,
                                    const char* op, const Parts&... parts) {
  throw Error(c10::SourceLocation{func, file, line}, join(op, parts...));
}

}  // namespace msg
}  // namespace aft_fast

// AFT_CHECK_VALUE(cond, op, parts...): a Python ValueError (bad value, shape, layout, device).
// AFT_CHECK_TYPE(cond, op, parts...): a Python TypeError (bad dtype). Same classes as the checks
// of the Python wrappers in aft_fast/ops.py, so a direct torch.ops call fails the same way.
#define AFT_CHECK_AS(error, cond, ...)                                                     \
  do {                                                                                     \
    if (C10_UNLIKELY(!(cond)))                                                             \
      ::aft_fast::msg::fail<::c10::error>(__func__, __FILE__, static_cast<uint32_t>(__LINE__), \
                                          __VA_ARGS__);                                    \
  } while (0)
#define AFT_CHECK_VALUE(cond, ...) AFT_CHECK_AS(ValueError, cond, __VA_ARGS__)
#define AFT_CHECK_TYPE(cond, ...) AFT_CHECK_AS(TypeError, cond, __VA_ARGS__)
