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
//
// Interface (MindSpore AOT): int Name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
// void *stream, void *extra), inputs then outputs in `params`; NameInferShape / NameInferType give the output's shape
// and type (C++ inference, which MindSpore's dynamic-shape graphs need). Return 0 on success.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

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

// Every kernel returns its first input's shape and type.
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
