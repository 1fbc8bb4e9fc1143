// Fused fp32 CPU kernels for inference, called through MindSpore's AOT ops.Custom (model/cpu_kernels.py builds this
// file with the host's C++ compiler on first use). Each kernel is one pass over its input where MindSpore's CPU
// backend runs several elementwise kernels (and Erf, LayerNorm on one thread).
//
//   BiasGelu(x [..., F], bias [F]) -> y        y = GELU(x + bias), exact (erf) GELU: 0.5 v (1 + erf(v / sqrt 2))
//   LayerNormRows(x [..., E], gamma [E], beta [E], eps [1]) -> y   y = (x - mean) / sqrt(var + eps) * gamma + beta
//   CachedAttention(q [R, 1, D], k [R, L, D], v [R, L, D], may [R, 1, W], bias [R, 1, W], scale [1]) -> out [R, 1, D]
//     one query per row over the first W <= L slots of its cache rows, read in place (no window copy):
//     s = (q . k) * scale * may + bias, p = softmax(s), out = p . v, as model/layers.AttentionCore computes it; a
//     slot with may = 0 has s = bias (its key is not read) and a slot whose weight underflows to 0 adds nothing
//     (its value is not read)
//   StripMatMul(x [M, K], w [K, N] in strip order, bias [N]) -> y [M, N]    y = x w + bias, w held as column strips
//     (see below): the few-row products of decoding and prefill, streaming the weights once per call
//
// Interface (MindSpore AOT): int Name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
// void *stream, void *extra), inputs then outputs in `params`; NameInferShape / NameInferType give the output's shape
// and type (C++ inference, which MindSpore's dynamic-shape graphs need). Return 0 on success.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef __AVX512F__  // StripMatMul is built for AVX-512 CPUs only (model/cpu_kernels.py offers it there)
// Strip order of a [K, N] weight (model/cpu_kernels.py writes it, STRIP_COLUMNS there): column strips of
// PCL_STRIP columns, strip s (width w_s = min(PCL_STRIP, N - s * PCL_STRIP)) stored row by row as a contiguous
// [K, w_s] block at offset s * K * PCL_STRIP. A strip is one sequential stream for the hardware prefetcher.
#ifndef PCL_STRIP
#error "build with -DPCL_STRIP=<columns per strip> (model/cpu_kernels.py)"
#endif
static_assert(PCL_STRIP == 48, "the tiles below hold three 16-float vectors per row");
#endif

namespace mindspore {
class AotExtra;
}
enum TypeId : int {};

namespace {

constexpr int64_t kMinElementsPerThread = 1 << 15;

// erf through erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), z >= 0: relative error of erfc below 1.2e-7 for
// every z (a Chebyshev fit, Numerical Recipes' erfcc), so GELU keeps fp32 precision at both tails and at 0.
inline float Gelu(float v) {
  const float z = std::fabs(v) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  const float poly =
      -1.26551223f +
      t * (1.00002368f +
           t * (0.37409196f +
                t * (0.09678418f +
                     t * (-0.18628806f +
                          t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f +
                                                                                           t * 0.17087277f))))))));
  const float erfc = t * std::exp(poly - z * z);
  const float erf = v >= 0.0f ? 1.0f - erfc : erfc - 1.0f;
  return 0.5f * v * (1.0f + erf);
}

void BiasGeluRows(const float *x, const float *bias, float *y, int64_t first, int64_t last, int64_t width) {
  for (int64_t r = first; r < last; ++r) {
    const float *in = x + r * width;
    float *out = y + r * width;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) out[j] = Gelu(in[j] + bias[j]);
  }
}

void LayerNormRowRange(const float *x, const float *gamma, const float *beta, float eps, float *y, int64_t first,
                       int64_t last, int64_t width) {
  for (int64_t r = first; r < last; ++r) {
    const float *in = x + r * width;
    float *out = y + r * width;
    double sum = 0.0;
    for (int64_t j = 0; j < width; ++j) sum += in[j];
    const float mean = static_cast<float>(sum / width);
    double squares = 0.0;
    for (int64_t j = 0; j < width; ++j) {
      const double d = in[j] - mean;
      squares += d * d;
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(squares / width + eps));
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) out[j] = (in[j] - mean) * inv * gamma[j] + beta[j];
  }
}

void AttendRows(const float *q, const float *k, const float *v, const float *may, const float *bias, float scale,
                float *out, int64_t first, int64_t last, int64_t slots, int64_t window, int64_t dim) {
  std::vector<float> score(window);
  for (int64_t r = first; r < last; ++r) {
    const float *qr = q + r * dim;
    const float *kr = k + r * slots * dim;
    const float *vr = v + r * slots * dim;
    const float *mr = may + r * window;
    const float *br = bias + r * window;
    float top = -std::numeric_limits<float>::max();  // finite: -ffast-math assumes no infinities
    for (int64_t s = 0; s < window; ++s) {
      float value = br[s];
      if (mr[s] != 0.0f) {
        const float *ks = kr + s * dim;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < dim; ++j) dot += qr[j] * ks[j];
        value += dot * scale * mr[s];
      }
      score[s] = value;
      top = std::max(top, value);
    }
    float total = 0.0f;
    for (int64_t s = 0; s < window; ++s) {
      score[s] = std::exp(score[s] - top);
      total += score[s];
    }
    float *o = out + r * dim;
    std::fill(o, o + dim, 0.0f);
    const float inv = 1.0f / total;
    for (int64_t s = 0; s < window; ++s) {
      const float weight = score[s] * inv;
      if (weight == 0.0f) continue;
      const float *vs = vr + s * dim;
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) o[j] += weight * vs[j];
    }
  }
}

// Runs fn(first, last) over [0, rows) in contiguous ranges, one per thread, as many threads as the work warrants.
template <typename Fn>
void ParallelRows(int64_t rows, int64_t width, Fn fn) {
  const int64_t hardware = std::max(1u, std::thread::hardware_concurrency());
  const int64_t wanted = std::max<int64_t>(1, rows * width / kMinElementsPerThread);
  const int64_t threads = std::min({hardware, wanted, rows});
  if (threads <= 1) {
    fn(0, rows);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t step = (rows + threads - 1) / threads;
  for (int64_t first = step; first < rows; first += step) pool.emplace_back(fn, first, std::min(rows, first + step));
  fn(0, std::min(rows, step));
  for (auto &worker : pool) worker.join();
}

#ifdef __AVX512F__
// ---- StripMatMul: register tiles of up to 8 rows x one strip (three 16-float vectors), accumulators in named
// registers (GCC 12 keeps an array of __m512 on the stack). While a tile runs, the next strip is prefetched into
// L2, spread evenly over every row group's k steps, so the weight stream overlaps the FMAs (at 1 row the hardware
// prefetcher alone is faster).
constexpr int kMinPrefetchRows = 2;

#define PCL_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

struct Prefetch {
  const char *base = nullptr;  // the next strip's bytes
  int64_t lines = 0, first = 0, steps = 1;  // this tile issues lines [first, first + lines * kn / steps)
};

template <int MR>
void StripTile(const float *x, int64_t ldx, const float *w, int64_t ldw, float *y, int64_t ldy, int64_t depth,
               const float *bias, __mmask16 m0, __mmask16 m1, __mmask16 m2, Prefetch pf) {
#define PCL_DECL(r) __m512 a##r##0, a##r##1, a##r##2;
  PCL_ROWS(PCL_DECL)
#define PCL_INIT(r)                                      \
  if constexpr (MR > r) {                                \
    a##r##0 = _mm512_maskz_loadu_ps(m0, bias);           \
    a##r##1 = _mm512_maskz_loadu_ps(m1, bias + 16);      \
    a##r##2 = _mm512_maskz_loadu_ps(m2, bias + 32);      \
  }
  PCL_ROWS(PCL_INIT)
#define PCL_FMA(r)                                       \
  if constexpr (MR > r) {                                \
    const __m512 b = _mm512_set1_ps(x[r * ldx + k]);     \
    a##r##0 = _mm512_fmadd_ps(b, w0, a##r##0);           \
    a##r##1 = _mm512_fmadd_ps(b, w1, a##r##1);           \
    a##r##2 = _mm512_fmadd_ps(b, w2, a##r##2);           \
  }
#define PCL_STEP                                         \
  {                                                      \
    const float *wk = w + k * ldw;                       \
    const __m512 w0 = _mm512_maskz_loadu_ps(m0, wk);     \
    const __m512 w1 = _mm512_maskz_loadu_ps(m1, wk + 16);\
    const __m512 w2 = _mm512_maskz_loadu_ps(m2, wk + 32);\
    PCL_ROWS(PCL_FMA)                                    \
  }
  if (pf.base != nullptr) {
    int64_t line = pf.first, owed = 0;
    for (int64_t k = 0; k < depth; ++k) {
      for (owed += pf.lines; owed >= pf.steps; owed -= pf.steps) _mm_prefetch(pf.base + 64 * line++, _MM_HINT_T1);
      PCL_STEP
    }
  } else {
    for (int64_t k = 0; k < depth; ++k) PCL_STEP
  }
#define PCL_STORE(r)                                     \
  if constexpr (MR > r) {                                \
    _mm512_mask_storeu_ps(y + r * ldy, m0, a##r##0);     \
    _mm512_mask_storeu_ps(y + r * ldy + 16, m1, a##r##1);\
    _mm512_mask_storeu_ps(y + r * ldy + 32, m2, a##r##2);\
  }
  PCL_ROWS(PCL_STORE)
}

__mmask16 LaneMask(int64_t width, int vector) {
  const int64_t lanes = std::max<int64_t>(0, std::min<int64_t>(16, width - 16 * vector));
  return static_cast<__mmask16>((1u << lanes) - 1);
}

// Strips [s0, s1) of y = x w + bias.
void StripRange(const float *x, const float *w, const float *bias, float *y, int64_t rows, int64_t depth,
                int64_t cols, int64_t s0, int64_t s1) {
  const int64_t strips = (cols + PCL_STRIP - 1) / PCL_STRIP, groups = (rows + 7) / 8;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t c = s * PCL_STRIP, width = std::min<int64_t>(PCL_STRIP, cols - c);
    const float *strip = w + c * depth;
    Prefetch pf;
    if (rows >= kMinPrefetchRows && s + 1 < strips) {
      const int64_t next = std::min<int64_t>(PCL_STRIP, cols - c - PCL_STRIP);
      pf.base = reinterpret_cast<const char *>(strip + width * depth);
      pf.lines = (next * depth * 4 + 63) / 64;
      pf.steps = depth * groups;
    }
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = 8 * g;
      pf.first = pf.lines * g / groups;
      const float *xr = x + r0 * depth;
      float *yr = y + r0 * cols + c;
      const __mmask16 m0 = LaneMask(width, 0), m1 = LaneMask(width, 1), m2 = LaneMask(width, 2);
      switch (std::min<int64_t>(8, rows - r0)) {
#define PCL_CASE(r) \
  case r + 1: StripTile<r + 1>(xr, depth, strip, width, yr, cols, depth, bias + c, m0, m1, m2, pf); break;
        PCL_ROWS(PCL_CASE)
      }
    }
  }
}

// Persistent helper threads for StripMatMul (one call splits its strips over the caller and the helpers): a helper
// spins briefly for the next call of a step, then sleeps.
class StripPool {
 public:
  static StripPool &Get() {
    static StripPool *pool = new StripPool();  // never destroyed: helpers may still sleep at exit
    return *pool;
  }
  int64_t Threads() const { return static_cast<int64_t>(helpers_.size()) + 1; }
  void Run(int64_t parts, const std::function<void(int64_t)> &part) {
    std::lock_guard<std::mutex> serial(run_);  // one product at a time
    const int64_t helpers = std::min<int64_t>(parts - 1, helpers_.size());
    for (int64_t i = 0; i < helpers; ++i) helpers_[i]->Post([&part, i] { part(i + 1); });
    part(0);
    for (int64_t i = 0; i < helpers; ++i) helpers_[i]->Wait();
  }

 private:
  class Helper {
   public:
    Helper() : thread_([this] { Loop(); }) { thread_.detach(); }
    void Post(std::function<void()> task) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        task_ = std::move(task);
        posted_.store(posted_.load() + 1, std::memory_order_release);
      }
      wake_.notify_one();
    }
    void Wait() {
      const uint64_t id = posted_.load();
      while (done_.load(std::memory_order_acquire) != id) _mm_pause();
    }

   private:
    void Loop() {
      uint64_t seen = 0;
      for (;;) {
        for (int spin = 0; posted_.load(std::memory_order_acquire) == seen && spin < 4000; ++spin) _mm_pause();
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mutex_);
          wake_.wait(lock, [&] { return posted_.load(std::memory_order_acquire) != seen; });
          seen = posted_.load();
          task = task_;
        }
        task();
        done_.store(seen, std::memory_order_release);
      }
    }
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<uint64_t> posted_{0}, done_{0};
    std::function<void()> task_;
    std::thread thread_;
  };

  StripPool() {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    for (int64_t i = 1; i < std::min<int64_t>(cores, 8); ++i) helpers_.push_back(std::make_unique<Helper>());
  }
  std::mutex run_;
  std::vector<std::unique_ptr<Helper>> helpers_;
};
#endif  // __AVX512F__

bool AllFloat32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

int64_t LeadingRows(int ndim, const int64_t *shape) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < ndim; ++i) rows *= shape[i];
  return rows;
}

}  // namespace

extern "C" int BiasGelu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
  if (nparam != 3 || !AllFloat32(nparam, dtypes)) return 1;
  const int64_t width = shapes[0][ndims[0] - 1];
  if (ndims[1] != 1 || shapes[1][0] != width) return 2;
  const auto *x = static_cast<const float *>(params[0]);
  const auto *bias = static_cast<const float *>(params[1]);
  auto *y = static_cast<float *>(params[2]);
  ParallelRows(LeadingRows(ndims[0], shapes[0]), width,
               [=](int64_t first, int64_t last) { BiasGeluRows(x, bias, y, first, last, width); });
  return 0;
}

extern "C" int LayerNormRows(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                             void *) {
  if (nparam != 5 || !AllFloat32(nparam, dtypes)) return 1;
  const int64_t width = shapes[0][ndims[0] - 1];
  if (ndims[1] != 1 || shapes[1][0] != width || ndims[2] != 1 || shapes[2][0] != width) return 2;
  const auto *x = static_cast<const float *>(params[0]);
  const auto *gamma = static_cast<const float *>(params[1]);
  const auto *beta = static_cast<const float *>(params[2]);
  const float eps = *static_cast<const float *>(params[3]);
  auto *y = static_cast<float *>(params[4]);
  ParallelRows(LeadingRows(ndims[0], shapes[0]), width, [=](int64_t first, int64_t last) {
    LayerNormRowRange(x, gamma, beta, eps, y, first, last, width);
  });
  return 0;
}

extern "C" int CachedAttention(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                               void *) {
  if (nparam != 7 || !AllFloat32(nparam, dtypes)) return 1;
  for (int i = 0; i < 5; ++i) {
    if (ndims[i] != 3) return 2;
  }
  const int64_t rows = shapes[0][0], dim = shapes[0][2], slots = shapes[1][1], window = shapes[3][2];
  if (shapes[0][1] != 1 || shapes[1][0] != rows || shapes[1][2] != dim || shapes[2][0] != rows ||
      shapes[2][1] != slots || shapes[2][2] != dim || shapes[3][0] != rows || shapes[3][1] != 1 ||
      shapes[4][0] != rows || shapes[4][1] != 1 || shapes[4][2] != window || window > slots || window < 1) {
    return 2;
  }
  const auto *q = static_cast<const float *>(params[0]);
  const auto *k = static_cast<const float *>(params[1]);
  const auto *v = static_cast<const float *>(params[2]);
  const auto *may = static_cast<const float *>(params[3]);
  const auto *bias = static_cast<const float *>(params[4]);
  const float scale = *static_cast<const float *>(params[5]);
  auto *out = static_cast<float *>(params[6]);
  ParallelRows(rows, window * dim, [=](int64_t first, int64_t last) {
    AttendRows(q, k, v, may, bias, scale, out, first, last, slots, window, dim);
  });
  return 0;
}

#ifdef __AVX512F__
extern "C" int StripMatMul(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                           void *) {
  if (nparam != 4 || !AllFloat32(nparam, dtypes)) return 1;
  if (ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 1) return 2;
  const int64_t rows = shapes[0][0], depth = shapes[0][1], cols = shapes[1][1];
  if (shapes[1][0] != depth || shapes[2][0] != cols) return 2;
  const auto *x = static_cast<const float *>(params[0]);
  const auto *w = static_cast<const float *>(params[1]);
  const auto *bias = static_cast<const float *>(params[2]);
  auto *y = static_cast<float *>(params[3]);
  const int64_t strips = (cols + PCL_STRIP - 1) / PCL_STRIP;
  StripPool &pool = StripPool::Get();
  const int64_t parts = std::min(pool.Threads(), std::max<int64_t>(1, rows * depth * cols / (1 << 18)));
  if (parts <= 1 || strips < 2) {
    StripRange(x, w, bias, y, rows, depth, cols, 0, strips);
    return 0;
  }
  const int64_t share = (strips + parts - 1) / parts;
  pool.Run(parts, [=](int64_t part) {
    StripRange(x, w, bias, y, rows, depth, cols, std::min(strips, part * share), std::min(strips, (part + 1) * share));
  });
  return 0;
}
#endif  // __AVX512F__

// Every kernel but StripMatMul returns its first input's shape and type.
extern "C" std::vector<int64_t> BiasGeluInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
extern "C" TypeId BiasGeluInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> LayerNormRowsInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
extern "C" TypeId LayerNormRowsInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> CachedAttentionInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
extern "C" TypeId CachedAttentionInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) {
  return type_ids[0];
}
#ifdef __AVX512F__
extern "C" std::vector<int64_t> StripMatMulInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[1][1]};  // [M, K] x [K, N]
}
extern "C" TypeId StripMatMulInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
#endif  // __AVX512F__
