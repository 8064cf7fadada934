#include "kernels/onednn_gemm.h"

#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "qforge/core/error.h"

// oneDNN (Debian's build) runs its primitives on OpenMP threads.
extern "C" void omp_set_num_threads(int);

namespace qforge::kernels::onednn {
namespace {

using dt = dnnl::memory::data_type;
using Shape = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t>;  // type m n k ldx ldw ldy

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Gemm {
  dnnl::memory::desc x, w, y, scratchpad;
  dnnl::matmul primitive;
  std::string impl;
};

// Descriptors for y[m,n] = x[m,k] · w[k,n] with w stored as n rows of ldw elements.
Gemm make_gemm(dt in, dt weights, dt out, int64_t m, int64_t n, int64_t k, int64_t ldx, int64_t ldw,
               int64_t ldy) {
  Gemm g;
  g.x = dnnl::memory::desc({m, k}, in, dnnl::memory::dims{ldx, 1});
  g.w = dnnl::memory::desc({k, n}, weights, dnnl::memory::dims{1, ldw});
  g.y = dnnl::memory::desc({m, n}, out, dnnl::memory::dims{ldy, 1});
  // Each thread brings its own scratchpad: oneDNN's default (one global scratchpad) is not safe
  // when primitives run concurrently, as ours do on the pool's threads.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(g.x, g.w, g.y), attr, cpu_engine());
  g.impl = pd.impl_info_str();
  g.scratchpad = pd.scratchpad_desc();
  g.primitive = dnnl::matmul(pd);
  return g;
}

// Primitives are created once per shape (prefill reuses a handful) and shared by all threads:
// oneDNN primitives may execute concurrently.
const Gemm& gemm_for(dt in, dt weights, dt out, int64_t m, int64_t n, int64_t k, int64_t ldx,
                     int64_t ldw, int64_t ldy) {
  static std::mutex mutex;
  static std::map<Shape, Gemm> cache;
  const Shape key{static_cast<int>(in), m, n, k, ldx, ldw, ldy};
  std::lock_guard lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, make_gemm(in, weights, out, m, n, k, ldx, ldw, ldy)).first;
  return it->second;
}

// Runs g on this thread alone (our pool owns the parallelism).
void execute(const Gemm& g, const void* x, const void* w, void* y) {
  thread_local bool single_threaded = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)single_threaded;
  thread_local dnnl::stream stream(cpu_engine());
  thread_local std::vector<std::byte> scratch;
  if (scratch.size() < g.scratchpad.get_size()) scratch.resize(g.scratchpad.get_size());
  dnnl::memory sm(g.scratchpad, cpu_engine(), scratch.data());
  dnnl::memory xm(g.x, cpu_engine(), const_cast<void*>(x));
  dnnl::memory wm(g.w, cpu_engine(), const_cast<void*>(w));
  dnnl::memory ym(g.y, cpu_engine(), y);
  g.primitive.execute(
      stream,
      {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCRATCHPAD, sm}});
  stream.wait();
}

// The implementation oneDNN picks for a typical prefill shape, or "" when it has none.
std::string probe(dt in, dt weights, dt out) {
  try {
    return gemm_for(in, weights, out, 64, 64, 256, 256, 256, 64).impl;
  } catch (const dnnl::error&) {
    return "";
  }
}

const std::string& bf16_impl() {
  static const std::string impl = probe(dt::bf16, dt::bf16, dt::f32);
  return impl;
}
const std::string& int8_impl() {
  static const std::string impl = probe(dt::s8, dt::s8, dt::s32);
  return impl;
}

// oneDNN's reference kernels ("ref:any") are far slower than OpenBLAS: only JIT ones count.
bool is_jit(const std::string& impl) {
  return !impl.empty() && impl.rfind("ref", 0) != 0;
}

}  // namespace

bool bf16_gemm_available() {
  return is_jit(bf16_impl());
}
bool int8_gemm_available() {
  // Without VNNI, oneDNN multiplies u8 x s8 with vpmaddubsw, whose 16-bit pair sums saturate
  // (255 * 127 * 2 > 32767): its s8 GEMM is then not exact (0.1% off on random W8A8 rows).
  static const bool exact_int8 = [] {
    __builtin_cpu_init();
    // (AVX-VNNI alone is not checked: clang's __builtin_cpu_supports has no name for it.)
    return __builtin_cpu_supports("avx512vnni");
  }();
  return exact_int8 && is_jit(int8_impl());
}
const char* bf16_impl_name() {
  return bf16_impl().c_str();
}
const char* int8_impl_name() {
  return int8_impl().c_str();
}

void gemm_bf16(int64_t m, int64_t n, int64_t k, const uint16_t* x, const uint16_t* w, int64_t ldw,
               float* y, int64_t ldy) {
  execute(gemm_for(dt::bf16, dt::bf16, dt::f32, m, n, k, k, ldw, ldy), x, w, y);
}

void gemm_s8(int64_t m, int64_t n, int64_t k, const int8_t* x, int64_t ldx, const int8_t* w,
             int64_t ldw, int32_t* y, int64_t ldy) {
  execute(gemm_for(dt::s8, dt::s8, dt::s32, m, n, k, ldx, ldw, ldy), x, w, y);
}

}  // namespace qforge::kernels::onednn
