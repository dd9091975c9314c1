// Conversions between float and the 16-bit storage types, compiled per instruction set like the
// element loops (see elementwise.h): at full vector width they keep mixed-precision passes
// memory-bound instead of conversion-bound.
#include "ops/cpu/elementwise.h"

namespace aft_fast {
namespace cpu {

AFT_CPU_CLONES void to_float(const c10::Half* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}
AFT_CPU_CLONES void to_float(const c10::BFloat16* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}
AFT_CPU_CLONES void from_float(const float* src, int64_t n, c10::Half* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<c10::Half>(src[i]);
}
AFT_CPU_CLONES void from_float(const float* src, int64_t n, c10::BFloat16* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<c10::BFloat16>(src[i]);
}

}  // namespace cpu
}  // namespace aft_fast
