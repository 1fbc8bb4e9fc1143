// Fused fp32 CPU kernels for inference, called through MindSpore's AOT ops.Custom (model/cpu_kernels.py builds this
// file with the host's C++ compiler on first use). Each kernel is one pass over its input where MindSpore's CPU
// backend runs several elementwise kernels (and Erf, LayerNorm on one thread).
//
//   BiasGelu(x [..., F], bias [F]) -> y        y = GELU(x + bias), exact (erf) GELU: 0.5 v (1 + erf(v / sqrt 2))
//   LayerNormRows(x [..., E], gamma [E], beta [E], eps [1]) -> y   y = (x - mean) / sqrt(var + eps) * gamma + beta
//   DecodeAttention(q [B, Cq], kv [B, Ckv], k [B*H, L, D], v [B*H, L, D], slots int32 [S], onehot [B*H, S, 1],
//                   may [B*H, 1, W], bias [B*H, 1, W], scale [H]) -> out [B, H*D]
//     a decode step's attention, one query per batch row and head: the heads of q are its first E = H*D columns,
//     those of the new key and value the last 2E columns of kv (c_attn's q|k|v, or q_attn's q and c_attn's k|v);
//     first the new k/v are added into the caches in place, k[b*H+h, slots[j]] += onehot[b*H+h, j] * k_new (as
//     model/layers.KVCacheWrite.add does), then each head attends over the first W <= L slots of its cache rows,
//     read in place: s = (q . k) * scale * may + bias, p = softmax(s), out = p . v, as model/layers.AttentionCore
//     computes it; a slot with may = 0 has s = bias (its key is not read) and a slot whose weight underflows to 0
//     adds nothing (its value is not read); out holds the heads merged back, [B, E]
//   PrefillAttention(q [B*T, Cq], kv [B*T, Ckv], k [R, L, D], v [R, L, D], rows int32 [B*H], may [B, Hm, T, T],
//                    bias [B, Hm, T, T], scale [H]) -> out [B*T, H*D]
//     a prefill's attention (Hm = 1 or H: one mask for every head or one per head), q and k|v as DecodeAttention
//     takes them: first cache row rows[b*H+h] is set in place to head h's keys and values of batch row b at slots
//     0..T-1 and zeros after them (model/layers.KVCacheWrite.reset), then each query attends over those T slots
//     as DecodeAttention's do; scale holds the score scale once per head (its length gives the output's width where
//     the batch is a dynamic dimension)
//   StripMatMul(x [M, K], w [K, N] in strip order, bias [N]) -> y [M, N]    y = x w + bias, w held as column strips
//     (see below): the few-row products of decoding and prefill, streaming the weights once per call
//   StripMatMulAdd(x, w, bias, residual [M, N]) -> y        y = x w + bias + residual (a block's residual sum)
//   StripMatMulGelu(x, w, bias) -> y                        y = GELU(x w + bias), exact GELU as BiasGelu
//   RowDotMatMul(x [M, K], w [N, K]) -> y [M, N]           y = x w^T, w in its row order: the tied head's few-row
//     products over the embedding table (one stream of the table per call)
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
#include <pthread.h>
#include <thread>
#include <vector>

// The vector unit the kernels are written for (PCL_SIMD, the bits of one vector): AVX-512, else AVX2 with FMA (the
// build's -march decides; model/cpu_kernels.py asks the library through PclSimdBits). Without either, only the
// scalar kernels (BiasGelu, LayerNormRows, the attention kernels) are built.
#if defined(__AVX512F__)
#define PCL_SIMD 512
#elif defined(__AVX2__) && defined(__FMA__)
#define PCL_SIMD 256
#endif

#ifdef PCL_SIMD  // the strip and row-dot products need a vector unit (model/cpu_kernels.py offers them only then)
// Strip order of a [K, N] weight (model/cpu_kernels.py writes it, STRIP_COLUMNS there): column strips of
// PCL_STRIP columns, strip s (width w_s = min(PCL_STRIP, N - s * PCL_STRIP)) stored row by row as a contiguous
// [K, w_s] block at offset s * K * PCL_STRIP. A strip is one sequential stream for the hardware prefetcher.
#ifndef PCL_STRIP
#error "build with -DPCL_STRIP=<columns per strip> (model/cpu_kernels.py)"
#endif
static_assert(PCL_STRIP == 48, "a strip row is three AVX-512 or six AVX2 vectors");
#endif

namespace mindspore {
class AotExtra;
}
enum TypeId : int {};

namespace {

constexpr int64_t kMinElementsPerThread = 1 << 15;
constexpr int64_t kMinMultiplyAddsPerThread = 1 << 18;  // the products' split

// erf through erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), z >= 0: relative error of erfc below 1.2e-7 for
// every z (a Chebyshev fit, Numerical Recipes' erfcc), so GELU keeps fp32 precision at both tails and at 0.
// P's coefficients, highest degree first.
inline constexpr float kErfcPoly[] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                      -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
inline float Gelu(float v) {
  const float z = std::fabs(v) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float poly = kErfcPoly[0];
  for (int i = 1; i < 10; ++i) poly = poly * t + kErfcPoly[i];
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

// One query over the first `window` slots of its cache rows k, v [slots, dim] (score: a scratch of `window` floats).
void AttendRow(const float *qr, const float *kr, const float *vr, const float *mr, const float *br, float scale,
               float *o, int64_t window, int64_t dim, float *score) {
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

#ifdef PCL_SIMD
// One vector of floats and the few operations the kernels use, for the build's vector unit: kLanes floats, a
// lane mask (Lanes(n): the first n lanes; masked-off lanes are neither read nor written), Round (to the nearest
// integer), Scale2(p, n) = p 2^n for whole n (0 where 2^n is below the normal range).
#if PCL_SIMD == 512
struct Simd {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static Mask Lanes(int64_t n) {
    return static_cast<Mask>((1u << std::max<int64_t>(0, std::min<int64_t>(16, n))) - 1);
  }
  static V Zero() { return _mm512_setzero_ps(); }
  static V Set(float v) { return _mm512_set1_ps(v); }
  static V Load(const float *p) { return _mm512_loadu_ps(p); }
  static V Load(Mask m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }
  static void Store(float *p, V v) { _mm512_storeu_ps(p, v); }
  static void Store(Mask m, float *p, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Keep(Mask m, V v) { return _mm512_maskz_mov_ps(m, v); }
  static V Abs(V v) { return _mm512_abs_ps(v); }
  static V Div(V a, V b) { return _mm512_div_ps(a, b); }
  static V IfNonNegative(V v, V yes, V no) {  // per lane: v >= 0 ? yes : no
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, Zero(), _CMP_GE_OQ), no, yes);
  }
  static float Sum(V v) { return _mm512_reduce_add_ps(v); }
  static V Round(V v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V Scale2(V p, V n) { return _mm512_scalef_ps(p, n); }  // scalef underflows to 0
};
#else
struct Simd {
  using V = __m256;
  using Mask = __m256i;
  static constexpr int kLanes = 8;
  static Mask Lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(8, n)))),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V Zero() { return _mm256_setzero_ps(); }
  static V Set(float v) { return _mm256_set1_ps(v); }
  static V Load(const float *p) { return _mm256_loadu_ps(p); }
  static V Load(Mask m, const float *p) { return _mm256_maskload_ps(p, m); }
  static void Store(float *p, V v) { _mm256_storeu_ps(p, v); }
  static void Store(Mask m, float *p, V v) { _mm256_maskstore_ps(p, m, v); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Keep(Mask m, V v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
  static V Abs(V v) { return _mm256_andnot_ps(Set(-0.0f), v); }
  static V Div(V a, V b) { return _mm256_div_ps(a, b); }
  static V IfNonNegative(V v, V yes, V no) { return _mm256_blendv_ps(no, yes, _mm256_cmp_ps(v, Zero(), _CMP_GE_OQ)); }
  static float Sum(V v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
  }
  static V Round(V v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V Scale2(V p, V n) {  // 2^n built in the exponent bits, 0 below 2^-126
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(Mul(p, _mm256_castsi256_ps(bits)), _mm256_cmp_ps(n, Set(-126.0f), _CMP_GE_OQ));
  }
};
#endif
using V = Simd::V;
constexpr int kLanes = Simd::kLanes;

// e^x in every lane: 2^n 2^f, x log2(e) = n + f, |f| <= 1/2, 2^f by its degree-7 Taylor polynomial (relative error
// below 2e-7); 0 for a very negative x, as a masked score's bias gives.
inline constexpr float kExpPoly[] = {1.52527338040598e-05f, 1.54035303933816e-04f, 1.33335581464284e-03f,
                                     9.61812910762848e-03f, 5.55041086648216e-02f, 2.40226506959101e-01f,
                                     6.93147180559945e-01f, 1.0f};
inline V Exp(V x) {
  const V t = Simd::Mul(x, Simd::Set(1.44269504088896341f));
  const V n = Simd::Round(t), f = Simd::Sub(t, n);
  V p = Simd::Set(kExpPoly[0]);
  for (int i = 1; i < 8; ++i) p = Simd::Fma(p, f, Simd::Set(kExpPoly[i]));
  return Simd::Scale2(p, n);
}

// Gelu in every lane (the same erfc fit, e^x by Exp): GELU(v) = v - v erfc(z) / 2 for v >= 0, v erfc(z) / 2
// below, z = |v| / sqrt 2. Not inlined: one compiled body for every tile, so a value does not depend on which tile
// computed it (-ffast-math fuses the multiplies and adds of an inlined copy as its context allows).
__attribute__((noinline)) V GeluVec(V v) {
  const V z = Simd::Mul(Simd::Abs(v), Simd::Set(0.70710678118654752f));
  const V t = Simd::Div(Simd::Set(1.0f), Simd::Fma(Simd::Set(0.5f), z, Simd::Set(1.0f)));
  V poly = Simd::Set(kErfcPoly[0]);
  for (int i = 1; i < 10; ++i) poly = Simd::Fma(poly, t, Simd::Set(kErfcPoly[i]));
  const V erfc = Simd::Mul(t, Exp(Simd::Sub(poly, Simd::Mul(z, z))));
  const V half = Simd::Mul(Simd::Mul(Simd::Set(0.5f), v), erfc);
  return Simd::IfNonNegative(v, Simd::Sub(v, half), half);
}

// The softmax of score[0, window) (top: its largest value) mixed over the value rows vr [window, kLanes * DV] into
// o; a slot whose weight underflows to 0 adds nothing (its value is not read).
template <int DV>
void MixRowVec(const float *vr, float *o, int64_t window, float *score, float top) {
  constexpr int64_t dim = kLanes * DV;
  V sums = Simd::Zero();
  const V shift = Simd::Set(top);
  for (int64_t s = 0; s < window; s += kLanes) {
    const Simd::Mask m = Simd::Lanes(window - s);
    const V e = Simd::Keep(m, Exp(Simd::Sub(Simd::Load(m, score + s), shift)));
    Simd::Store(m, score + s, e);
    sums = Simd::Add(sums, e);
  }
  const float inv = 1.0f / Simd::Sum(sums);
#define PCL_EIGHT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define PCL_ACC_DECL(c) V acc##c = Simd::Zero();
  PCL_EIGHT(PCL_ACC_DECL)  // named accumulators: GCC keeps an array of vectors in memory
  for (int64_t s = 0; s < window; ++s) {
    if (score[s] == 0.0f) continue;
    const V weight = Simd::Set(score[s] * inv);
    const float *vs = vr + s * dim;
#define PCL_ACC_FMA(c) \
    if constexpr (DV > c) acc##c = Simd::Fma(weight, Simd::Load(vs + kLanes * c), acc##c);
    PCL_EIGHT(PCL_ACC_FMA)
  }
#define PCL_ACC_STORE(c) \
  if constexpr (DV > c) Simd::Store(o + kLanes * c, acc##c);
  PCL_EIGHT(PCL_ACC_STORE)
}

// AttendRow for a head dim of kLanes * DV (DV <= 8): the query held in registers, one key row at a time (the value
// rows of the window prefetched meanwhile).
template <int DV>
void AttendRowVec(const float *qr, const float *kr, const float *vr, const float *mr, const float *br, float scale,
                  float *o, int64_t window, float *score) {
  static_assert(DV >= 1 && DV <= 8, "eight vector accumulators at most");
  constexpr int64_t dim = kLanes * DV;
  V q[DV];
#pragma GCC unroll 8
  for (int c = 0; c < DV; ++c) q[c] = Simd::Load(qr + kLanes * c);
  float top = -std::numeric_limits<float>::max();
  for (int64_t s = 0; s < window; ++s) {
    float value = br[s];
#pragma GCC unroll 8
    for (int c = 0; c < DV; ++c) _mm_prefetch(reinterpret_cast<const char *>(vr + s * dim + kLanes * c), _MM_HINT_T1);
    if (mr[s] != 0.0f) {
      const float *ks = kr + s * dim;
      V dot = Simd::Mul(q[0], Simd::Load(ks));
#pragma GCC unroll 8
      for (int c = 1; c < DV; ++c) dot = Simd::Fma(q[c], Simd::Load(ks + kLanes * c), dot);
      value += Simd::Sum(dot) * scale * mr[s];
    }
    score[s] = value;
    top = std::max(top, value);
  }
  MixRowVec<DV>(vr, o, window, score, top);
}

#endif  // PCL_SIMD

// One query's attention (AttendRow's arguments): in registers for the usual head dims (128 needs AVX-512).
void Attend(const float *qr, const float *kr, const float *vr, const float *mr, const float *br, float scale,
            float *o, int64_t window, int64_t dim, float *score) {
#ifdef PCL_SIMD
  switch (dim) {
    case 32: return AttendRowVec<32 / kLanes>(qr, kr, vr, mr, br, scale, o, window, score);
    case 64: return AttendRowVec<64 / kLanes>(qr, kr, vr, mr, br, scale, o, window, score);
    case 128:
      if (128 / kLanes <= 8) {
        return AttendRowVec<std::min(8, 128 / kLanes)>(qr, kr, vr, mr, br, scale, o, window, score);
      }
      break;
  }
#endif
  AttendRow(qr, kr, vr, mr, br, scale, o, window, dim, score);
}

// The shapes of one DecodeAttention call (see the top of the file).
struct DecodeShape {
  int64_t batch, heads, slots, dim, window, writes, q_cols, kv_cols;
};

// Cache rows [first, last) of a DecodeAttention call: add the new k/v at their slots, then attend.
void DecodeRows(const float *q, const float *kv, float *k, float *v, const int32_t *slots, const float *onehot,
                const float *may, const float *bias, float scale, float *out, const DecodeShape &n, int64_t first,
                int64_t last) {
  const int64_t width = n.heads * n.dim;
  std::vector<float> score(n.window);
  for (int64_t r = first; r < last; ++r) {
    const int64_t b = r / n.heads, h = r % n.heads;
    const float *k_new = kv + b * n.kv_cols + n.kv_cols - 2 * width + h * n.dim;
    const float *v_new = k_new + width;
    float *kr = k + r * n.slots * n.dim, *vr = v + r * n.slots * n.dim;
    for (int64_t j = 0; j < n.writes; ++j) {
      const float w = onehot[r * n.writes + j];
      if (w == 0.0f) continue;
      float *ks = kr + slots[j] * n.dim, *vs = vr + slots[j] * n.dim;
#pragma omp simd
      for (int64_t i = 0; i < n.dim; ++i) {
        ks[i] += w * k_new[i];
        vs[i] += w * v_new[i];
      }
    }
    Attend(q + b * n.q_cols + h * n.dim, kr, vr, may + r * n.window, bias + r * n.window, scale,
           out + b * width + h * n.dim, n.window, n.dim, score.data());
  }
}

// The shapes of one PrefillAttention call (see the top of the file).
struct PrefillShape {
  int64_t batch, heads, seq, slots, dim, mask_heads, q_cols, kv_cols;
};

// Heads [first, last) (b * H + h) of a PrefillAttention call: cache row rows[b * H + h] := the head's keys and
// values at slots 0..T-1, zeros after them; then each of the T queries attends over those slots.
void PrefillHeads(const float *q, const float *kv, float *k, float *v, const int32_t *rows, const float *may,
                  const float *bias, float scale, float *out, const PrefillShape &n, int64_t first, int64_t last) {
  const int64_t width = n.heads * n.dim, t = n.seq;
  std::vector<float> score(t);
  for (int64_t item = first; item < last; ++item) {
    const int64_t b = item / n.heads, h = item % n.heads;
    float *kr = k + rows[item] * n.slots * n.dim, *vr = v + rows[item] * n.slots * n.dim;
    for (int64_t s = 0; s < t; ++s) {
      const float *k_new = kv + (b * t + s) * n.kv_cols + n.kv_cols - 2 * width + h * n.dim;
      std::memcpy(kr + s * n.dim, k_new, n.dim * sizeof(float));
      std::memcpy(vr + s * n.dim, k_new + width, n.dim * sizeof(float));
    }
    std::fill(kr + t * n.dim, kr + n.slots * n.dim, 0.0f);
    std::fill(vr + t * n.dim, vr + n.slots * n.dim, 0.0f);
    const int64_t mask = (b * n.mask_heads + (n.mask_heads == 1 ? 0 : h)) * t * t;
    for (int64_t i = 0; i < t; ++i) {
      Attend(q + (b * t + i) * n.q_cols + h * n.dim, kr, vr, may + mask + i * t, bias + mask + i * t, scale,
             out + (b * t + i) * width + h * n.dim, t, n.dim, score.data());
    }
  }
}

// Persistent helper threads (one kernel call splits its work over the caller and the helpers): a helper spins
// briefly for the next call of a step, then sleeps. A forked child (which has no helpers) starts a pool of its own.
class WorkerPool {
 public:
  static WorkerPool &Get() {
    WorkerPool *pool = instance_.load(std::memory_order_acquire);
    if (pool != nullptr) return *pool;
    static std::mutex make;
    std::lock_guard<std::mutex> lock(make);
    static std::once_flag hook;
    std::call_once(hook, [] { pthread_atfork(nullptr, nullptr, [] { instance_.store(nullptr); }); });
    if (instance_.load() == nullptr) instance_.store(new WorkerPool());  // never destroyed: helpers may sleep at exit
    return *instance_.load();
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

  WorkerPool() {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    for (int64_t i = 1; i < std::min<int64_t>(cores, 8); ++i) helpers_.push_back(std::make_unique<Helper>());
  }
  static inline std::atomic<WorkerPool *> instance_{nullptr};
  std::mutex run_;
  std::vector<std::unique_ptr<Helper>> helpers_;
};
// Runs fn(first, last) over [0, rows) in contiguous ranges, one per WorkerPool thread, as many as the work warrants
// (`width`: the work of one row, at least `per_thread` of it per thread).
template <typename Fn>
void ParallelRows(int64_t rows, int64_t width, Fn fn, int64_t per_thread = kMinElementsPerThread) {
  WorkerPool &pool = WorkerPool::Get();
  const int64_t wanted = std::max<int64_t>(1, rows * width / per_thread);
  const int64_t parts = std::min({pool.Threads(), wanted, rows});
  if (parts <= 1) {
    fn(0, rows);
    return;
  }
  const int64_t step = (rows + parts - 1) / parts;
  pool.Run(parts, [&](int64_t part) { fn(std::min(rows, part * step), std::min(rows, (part + 1) * step)); });
}

#ifdef PCL_SIMD
// ---- StripMatMul: register tiles of up to kTileRows rows x kTileVectors vectors (AVX-512: 8 x 3, one tile per
// strip; AVX2: 6 x 2, three tiles per strip: 12 accumulators, 2 weight vectors and a broadcast of the 16 registers),
// accumulators in named registers (GCC 12 keeps an array of vectors on the stack). While a tile runs, the next strip
// is prefetched into L2, spread evenly over every tile's k steps, so the weight stream overlaps the FMAs (at 1 row
// the hardware prefetcher alone is faster).
constexpr int kTileRows = kLanes == 16 ? 8 : 6;
constexpr int kTileVectors = kLanes == 16 ? 3 : 2;
constexpr int64_t kTileColumns = kTileVectors * kLanes;
static_assert(PCL_STRIP % kTileColumns == 0, "a strip holds whole column tiles");
constexpr int kMinPrefetchRows = 2;
// k steps per block: AVX-512 tiles read a strip's 3 lines per k step in order, from L2; an AVX2 tile reads 1 of
// them (64 bytes every 192), which the L1 prefetcher does not keep up with, so the AVX2 block is one that fits L1
// (128 x 48 floats, 24 KB: +10% at the 300m shapes on a Zen 4; 512 is 6% faster there with AVX-512).
constexpr int64_t kStripDepthBlock = kLanes == 16 ? 512 : 128;
// Rows of x that pass over a thread's strips together: their k block (192 x 512 floats, 384 KB) stays in L2 while
// the strips stream past, where every strip re-reading all of x from L3 stalls the tiles (prefill: +2-9% per
// product on a Zen 4 EPYC; a row's sums keep their order, so the values do not change).
constexpr int64_t kStripRowBlock = 192;

#define PCL_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

struct Prefetch {
  const char *base = nullptr;  // the next strip's bytes
  int64_t lines = 0, first = 0, steps = 1;  // this tile issues lines [first, first + lines * kn / steps)
};

// What a tile does with its sums before it stores them: nothing, add the residual (same layout as y), exact GELU.
enum class Epilogue { kNone, kAdd, kGelu };

// The lanes of m, or (kWhole) the whole vector without a mask: AVX2's masked moves are slow (its masked store is
// microcoded on AMD: 2-3% of a tile's time).
template <bool kWhole>
inline V LoadLanes(Simd::Mask m, const float *p) {
  if constexpr (kWhole) return Simd::Load(p); else return Simd::Load(m, p);
}
template <bool kWhole>
inline void StoreLanes(Simd::Mask m, float *p, V v) {
  if constexpr (kWhole) Simd::Store(p, v); else Simd::Store(m, p, v);
}

// One vector of a tile row's sums (bias included) through the epilogue into y (the lanes of m, or all: kWhole):
// the residual added, or the exact GELU.
template <Epilogue E, bool kWhole>
inline void FinishVector(V a, float *y, const float *res, Simd::Mask m) {
  if constexpr (E == Epilogue::kAdd) a = Simd::Add(a, LoadLanes<kWhole>(m, res));
  if constexpr (E == Epilogue::kGelu) a = GeluVec(a);
  StoreLanes<kWhole>(m, y, a);
}

// MR rows x kTileVectors vectors of y (the lanes of m0..m2) += x w over `depth` k steps, from `init` (bias or the
// sums so far); kFull: every vector whole (the weight read unmasked).
template <int MR, Epilogue E, bool kFull>
void StripTile(const float *x, int64_t ldx, const float *w, int64_t ldw, float *y, int64_t ldy, int64_t depth,
               const float *init, int64_t ldi, const float *res, Simd::Mask m0, Simd::Mask m1, Simd::Mask m2,
               Prefetch pf) {
  static_assert(MR >= 1 && MR <= kTileRows, "the tile's accumulators must fit the registers");
#define PCL_DECL(r) V a##r##0, a##r##1, a##r##2;
  PCL_ROWS(PCL_DECL)
#define PCL_INIT(r)                                                \
  if constexpr (MR > r) {                                          \
    a##r##0 = LoadLanes<kFull>(m0, init + r * ldi);                \
    a##r##1 = LoadLanes<kFull>(m1, init + r * ldi + kLanes);       \
    if constexpr (kTileVectors > 2) a##r##2 = LoadLanes<kFull>(m2, init + r * ldi + 2 * kLanes); \
  }
  PCL_ROWS(PCL_INIT)
#define PCL_FMA(r)                                                 \
  if constexpr (MR > r) {                                          \
    const V b = Simd::Set(x[r * ldx + k]);                         \
    a##r##0 = Simd::Fma(b, w0, a##r##0);                           \
    a##r##1 = Simd::Fma(b, w1, a##r##1);                           \
    if constexpr (kTileVectors > 2) a##r##2 = Simd::Fma(b, w2, a##r##2); \
  }
#define PCL_STEP                                                                          \
  {                                                                                       \
    const float *wk = w + k * ldw;                                                        \
    const V w0 = LoadLanes<kFull>(m0, wk);                                                \
    const V w1 = LoadLanes<kFull>(m1, wk + kLanes);                                       \
    const V w2 = kTileVectors < 3 ? w0 : LoadLanes<kFull>(m2, wk + 2 * kLanes);           \
    PCL_ROWS(PCL_FMA)                                                                     \
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
#define PCL_STORE(r)                                                                                          \
  if constexpr (MR > r) {                                                                                     \
    float *yr = y + r * ldy;                                                                                  \
    const float *rr = E == Epilogue::kAdd ? res + r * ldy : nullptr;                                          \
    FinishVector<E, kFull>(a##r##0, yr, rr, m0);                                                              \
    FinishVector<E, kFull>(a##r##1, yr + kLanes, E == Epilogue::kAdd ? rr + kLanes : nullptr, m1);            \
    if constexpr (kTileVectors > 2) {                                                                         \
      FinishVector<E, kFull>(a##r##2, yr + 2 * kLanes, E == Epilogue::kAdd ? rr + 2 * kLanes : nullptr, m2);  \
    }                                                                                                         \
  }
  PCL_ROWS(PCL_STORE)
}

// A tile of the last k block applies the epilogue; the others store plain sums (no residual yet).
template <int MR, Epilogue E>
void RunStripTile(bool last, bool full, const float *x, int64_t ldx, const float *w, int64_t ldw, float *y,
                  int64_t ldy, int64_t depth, const float *init, int64_t ldi, const float *res, Simd::Mask m0,
                  Simd::Mask m1, Simd::Mask m2, Prefetch pf) {
  if (last && full) {
    StripTile<MR, E, true>(x, ldx, w, ldw, y, ldy, depth, init, ldi, res, m0, m1, m2, pf);
  } else if (last) {
    StripTile<MR, E, false>(x, ldx, w, ldw, y, ldy, depth, init, ldi, res, m0, m1, m2, pf);
  } else if (full) {
    StripTile<MR, Epilogue::kNone, true>(x, ldx, w, ldw, y, ldy, depth, init, ldi, nullptr, m0, m1, m2, pf);
  } else {
    StripTile<MR, Epilogue::kNone, false>(x, ldx, w, ldw, y, ldy, depth, init, ldi, nullptr, m0, m1, m2, pf);
  }
}

// One row over NS whole strips at once (NS * 48 / kLanes <= 12 accumulators: four strips with AVX-512, two with
// AVX2; several weight streams: one stream per thread leaves the memory bus idle between its prefetches); each
// column's sum in the same order as StripTile's, so a row's values do not depend on the rows beside it.
constexpr int kStripVectors = PCL_STRIP / kLanes;
constexpr int kRowStrips = 12 / kStripVectors;
#define PCL_TWELVE(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
template <int NS, Epilogue E>
void StripRowTile(const float *x, const float *w, float *y, int64_t depth, const float *bias, const float *res) {
  static_assert(NS >= 1 && NS <= kRowStrips, "twelve accumulators at most");
  constexpr int kVectors = NS * kStripVectors;  // accumulator i: strip i / kStripVectors, its vector i % kStripVectors
  const Simd::Mask all = Simd::Lanes(kLanes);
#define PCL_R_COLUMN(i) ((i) / kStripVectors * PCL_STRIP + (i) % kStripVectors * kLanes)
#define PCL_R_INIT(i) \
  V s##i;             \
  if constexpr (kVectors > i) s##i = Simd::Load(bias + PCL_R_COLUMN(i));
  PCL_TWELVE(PCL_R_INIT)
#define PCL_R_FMA(i)                                                                                           \
  if constexpr (kVectors > i) {                                                                                \
    s##i = Simd::Fma(b, Simd::Load(w + (i) / kStripVectors * PCL_STRIP * depth + k * PCL_STRIP +               \
                                   (i) % kStripVectors * kLanes), s##i);                                       \
  }
  for (int64_t k = 0; k < depth; ++k) {
    const V b = Simd::Set(x[k]);
    PCL_TWELVE(PCL_R_FMA)
  }
#define PCL_R_STORE(i)                                                                                         \
  if constexpr (kVectors > i) {                                                                                \
    FinishVector<E, true>(s##i, y + PCL_R_COLUMN(i), E == Epilogue::kAdd ? res + PCL_R_COLUMN(i) : nullptr, all); \
  }
  PCL_TWELVE(PCL_R_STORE)
}

// Strips [s0, s1) of y = x w + bias (then the epilogue); x's rows ldx floats apart.
template <Epilogue E>
void StripRange(const float *x, int64_t ldx, const float *w, const float *bias, const float *res, float *y,
                int64_t rows, int64_t depth, int64_t cols, int64_t s0, int64_t s1) {
  const int64_t strips = (cols + PCL_STRIP - 1) / PCL_STRIP, groups = (rows + kTileRows - 1) / kTileRows;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t c = s * PCL_STRIP, width = std::min<int64_t>(PCL_STRIP, cols - c);
    const float *strip = w + c * depth;
    const int64_t whole = std::min<int64_t>(kRowStrips, std::min(s1, cols / PCL_STRIP) - s);
    if (rows == 1 && whole > 0) {  // whole strips as one tile
      const float *rr = res == nullptr ? nullptr : res + c;
      switch (whole) {
#define PCL_R_CASE(j)                                                                  \
  case j + 1:                                                                          \
    if constexpr (j < kRowStrips) StripRowTile<j + 1, E>(x, strip, y + c, depth, bias + c, rr); \
    break;
        PCL_R_CASE(0) PCL_R_CASE(1) PCL_R_CASE(2) PCL_R_CASE(3)
      }
      s += whole - 1;
      continue;
    }
    // k blocks of at most kStripDepthBlock rows: a block of the strip and of x stay in cache while every row group
    // passes over them; a column's sum runs on in y between blocks (the same order as one pass), bias first
    const int64_t tiles = (width + kTileColumns - 1) / kTileColumns;  // column tiles of this strip
    for (int64_t k0 = 0; k0 < depth; k0 += kStripDepthBlock) {
      const int64_t block = std::min(kStripDepthBlock, depth - k0);
      const bool last = k0 + block == depth;
      const float *chunk = strip + k0 * width;
      Prefetch pf;
      if (rows >= kMinPrefetchRows && (!last || s + 1 < strips)) {  // the next chunk follows this one in memory
        const int64_t next = last ? std::min<int64_t>(PCL_STRIP, cols - c - PCL_STRIP) *
                                        std::min(kStripDepthBlock, depth)
                                  : width * std::min(kStripDepthBlock, depth - k0 - block);
        pf.base = reinterpret_cast<const char *>(chunk + block * width);
        pf.lines = (next * 4 + 63) / 64;
        pf.steps = block * groups * tiles;
      }
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t r0 = kTileRows * g;
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t c0 = c + t * kTileColumns, tw = std::min(kTileColumns, cols - c0);
          const Simd::Mask m0 = Simd::Lanes(tw), m1 = Simd::Lanes(tw - kLanes), m2 = Simd::Lanes(tw - 2 * kLanes);
          pf.first = pf.lines * (g * tiles + t) / (groups * tiles);
          const float *xr = x + r0 * ldx + k0, *wt = chunk + t * kTileColumns;
          float *yr = y + r0 * cols + c0;
          const float *rr = res == nullptr ? nullptr : res + r0 * cols + c0;
          const float *init = k0 == 0 ? bias + c0 : yr;
          const int64_t ldi = k0 == 0 ? 0 : cols;
          const bool full = tw == kTileColumns;
          switch (std::min<int64_t>(kTileRows, rows - r0)) {
#define PCL_CASE(r)                                                                                           \
  case r + 1:                                                                                                 \
    if constexpr (r < kTileRows) {                                                                            \
      RunStripTile<r + 1, E>(last, full, xr, ldx, wt, width, yr, cols, block, init, ldi, rr, m0, m1, m2, pf); \
    }                                                                                                         \
    break;
            PCL_ROWS(PCL_CASE)
          }
        }
      }
    }
  }
}

// ---- RowDotMatMul: y = x w^T with w [N, K] in its own row order (the tied head reads the embedding table as it
// is stored): tiles of up to kRowDotRows x rows by 4 w rows, one vector accumulator per (x row, w row) summed
// across its lanes at the end, the k tail read under a lane mask. A tile keeps its 4 w rows in L1 while every x
// row group passes.
constexpr int kRowDotRows = kLanes == 16 ? 4 : 2;  // 4 x 4 or 2 x 4 accumulators
#define PCL_FOUR(X) X(0) X(1) X(2) X(3)

template <int MR, int NR>
void RowDotTile(const float *x, const float *w, float *y, int64_t ldy, int64_t depth) {
  static_assert(MR >= 1 && MR <= kRowDotRows, "the tile's accumulators must fit the registers");
#define PCL_RD_DECL(r) V d##r##0, d##r##1, d##r##2, d##r##3;
  PCL_FOUR(PCL_RD_DECL)
#define PCL_RD_ZERO(r)                                                                 \
  if constexpr (MR > r) {                                                              \
    d##r##0 = Simd::Zero(), d##r##1 = d##r##0, d##r##2 = d##r##0, d##r##3 = d##r##0;   \
  }
  PCL_FOUR(PCL_RD_ZERO)
#define PCL_RD_ROW(r)                                                  \
  if constexpr (MR > r) {                                              \
    const V xv = PCL_RD_LOAD(x + r * depth + k);                       \
    d##r##0 = Simd::Fma(xv, w0, d##r##0);                              \
    if constexpr (NR > 1) d##r##1 = Simd::Fma(xv, w1, d##r##1);        \
    if constexpr (NR > 2) d##r##2 = Simd::Fma(xv, w2, d##r##2);        \
    if constexpr (NR > 3) d##r##3 = Simd::Fma(xv, w3, d##r##3);        \
  }
#define PCL_RD_STEP                                                    \
  {                                                                    \
    const V w0 = PCL_RD_LOAD(w + k);                                   \
    const V w1 = NR > 1 ? PCL_RD_LOAD(w + depth + k) : w0;             \
    const V w2 = NR > 2 ? PCL_RD_LOAD(w + 2 * depth + k) : w0;         \
    const V w3 = NR > 3 ? PCL_RD_LOAD(w + 3 * depth + k) : w0;         \
    PCL_FOUR(PCL_RD_ROW)                                               \
  }
  int64_t k = 0;
#define PCL_RD_LOAD(p) Simd::Load(p)
  for (; k + kLanes <= depth; k += kLanes) PCL_RD_STEP
#undef PCL_RD_LOAD
  if (k < depth) {
    const Simd::Mask mask = Simd::Lanes(depth - k);
#define PCL_RD_LOAD(p) Simd::Load(mask, p)
    PCL_RD_STEP
#undef PCL_RD_LOAD
  }
#define PCL_RD_STORE(r)                                                 \
  if constexpr (MR > r) {                                               \
    y[r * ldy] = Simd::Sum(d##r##0);                                    \
    if constexpr (NR > 1) y[r * ldy + 1] = Simd::Sum(d##r##1);          \
    if constexpr (NR > 2) y[r * ldy + 2] = Simd::Sum(d##r##2);          \
    if constexpr (NR > 3) y[r * ldy + 3] = Simd::Sum(d##r##3);          \
  }
  PCL_FOUR(PCL_RD_STORE)
}

// Columns [n, n + NR) of y = x w^T: every x row group over the tile's w rows.
template <int NR>
void RowDotColumns(const float *x, const float *w, float *y, int64_t rows, int64_t depth, int64_t cols,
                   int64_t n) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowDotRows) {
    const float *xr = x + r0 * depth, *wn = w + n * depth;
    float *yr = y + r0 * cols + n;
    switch (std::min<int64_t>(kRowDotRows, rows - r0)) {
#define PCL_RD_CASE(r)                                                              \
  case r + 1:                                                                       \
    if constexpr (r < kRowDotRows) RowDotTile<r + 1, NR>(xr, wn, yr, cols, depth);  \
    break;
      PCL_FOUR(PCL_RD_CASE)
    }
  }
}

// Columns [n0, n1) of y = x w^T: 4 w rows at a time (single rows for the tail).
void RowDotRange(const float *x, const float *w, float *y, int64_t rows, int64_t depth, int64_t cols, int64_t n0,
                 int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) RowDotColumns<4>(x, w, y, rows, depth, cols, n);
  for (; n < n1; ++n) RowDotColumns<1>(x, w, y, rows, depth, cols, n);
}

#endif  // PCL_SIMD

bool AllFloat32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

// Every parameter float32 except parameter `index`, int32.
bool Float32ButInt32At(int index, int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], i == index ? "int32" : "float32") != 0) return false;
  }
  return true;
}

// Whether each of the `count` indices lies in [0, bound).
bool AllIn(const int32_t *indices, int64_t count, int64_t bound) {
  return std::all_of(indices, indices + count, [=](int32_t i) { return i >= 0 && i < bound; });
}

bool SameShape(const int64_t *shape, std::initializer_list<int64_t> want) {
  return std::equal(want.begin(), want.end(), shape);
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

extern "C" int DecodeAttention(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                               void *) {
  if (nparam != 10 || !Float32ButInt32At(4, nparam, dtypes)) return 1;
  if (ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 3 || ndims[3] != 3 || ndims[4] != 1 || ndims[5] != 3 ||
      ndims[6] != 3 || ndims[7] != 3) {
    return 2;
  }
  DecodeShape n;
  n.batch = shapes[0][0], n.q_cols = shapes[0][1], n.kv_cols = shapes[1][1], n.slots = shapes[2][1];
  n.dim = shapes[2][2], n.writes = shapes[4][0], n.window = shapes[6][2];
  const int64_t rows = shapes[2][0];
  n.heads = n.batch > 0 ? rows / n.batch : 0;
  const int64_t width = n.heads * n.dim;
  if (n.batch < 1 || n.heads * n.batch != rows || shapes[1][0] != n.batch || n.q_cols < width ||
      n.kv_cols < 2 * width || !SameShape(shapes[3], {rows, n.slots, n.dim}) || !SameShape(shapes[5], {rows, n.writes, 1}) ||
      !SameShape(shapes[6], {rows, 1, n.window}) || !SameShape(shapes[7], {rows, 1, n.window}) || n.window > n.slots ||
      n.window < 1 || ndims[8] != 1 || shapes[8][0] != n.heads) {
    return 2;
  }
  const auto *slots = static_cast<const int32_t *>(params[4]);
  if (!AllIn(slots, n.writes, n.slots)) return 3;
  const auto *q = static_cast<const float *>(params[0]);
  const auto *kv = static_cast<const float *>(params[1]);
  auto *k = static_cast<float *>(params[2]);  // the cache Parameters, written in place
  auto *v = static_cast<float *>(params[3]);
  const auto *onehot = static_cast<const float *>(params[5]);
  const auto *may = static_cast<const float *>(params[6]);
  const auto *bias = static_cast<const float *>(params[7]);
  const float scale = *static_cast<const float *>(params[8]);
  auto *out = static_cast<float *>(params[9]);
  ParallelRows(rows, n.window * n.dim, [=](int64_t first, int64_t last) {
    DecodeRows(q, kv, k, v, slots, onehot, may, bias, scale, out, n, first, last);
  });
  return 0;
}

extern "C" int PrefillAttention(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                                void *) {
  if (nparam != 9 || !Float32ButInt32At(4, nparam, dtypes)) return 1;
  if (ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 3 || ndims[3] != 3 || ndims[4] != 1 || ndims[5] != 4 ||
      ndims[6] != 4) {
    return 2;
  }
  PrefillShape n;
  n.batch = shapes[5][0], n.mask_heads = shapes[5][1], n.seq = shapes[5][2], n.slots = shapes[2][1];
  n.dim = shapes[2][2], n.q_cols = shapes[0][1], n.kv_cols = shapes[1][1];
  const int64_t items = shapes[4][0], cache_rows = shapes[2][0];
  n.heads = n.batch > 0 ? items / n.batch : 0;
  const int64_t width = n.heads * n.dim;
  if (n.batch < 1 || n.heads < 1 || n.heads * n.batch != items || n.seq < 1 || n.seq > n.slots ||
      shapes[0][0] != n.batch * n.seq || shapes[1][0] != n.batch * n.seq || n.q_cols < width ||
      n.kv_cols < 2 * width || !SameShape(shapes[3], {cache_rows, n.slots, n.dim}) || shapes[5][3] != n.seq ||
      (n.mask_heads != 1 && n.mask_heads != n.heads) || !SameShape(shapes[6], {n.batch, n.mask_heads, n.seq, n.seq}) ||
      ndims[7] != 1 || shapes[7][0] != n.heads) {
    return 2;
  }
  const auto *rows = static_cast<const int32_t *>(params[4]);
  if (!AllIn(rows, items, cache_rows)) return 3;
  const auto *q = static_cast<const float *>(params[0]);
  const auto *kv = static_cast<const float *>(params[1]);
  auto *k = static_cast<float *>(params[2]);  // the cache Parameters, written in place
  auto *v = static_cast<float *>(params[3]);
  const auto *may = static_cast<const float *>(params[5]);
  const auto *bias = static_cast<const float *>(params[6]);
  const float scale = *static_cast<const float *>(params[7]);
  auto *out = static_cast<float *>(params[8]);
  ParallelRows(items, n.seq * n.seq * n.dim, [=](int64_t first, int64_t last) {
    PrefillHeads(q, kv, k, v, rows, may, bias, scale, out, n, first, last);
  });
  return 0;
}

#ifdef PCL_SIMD
namespace {
// Rows of x 2 KB apart or a multiple of that (the 300m's depths, 1024 and 4096) fall into the same few L1 sets, so
// an AVX2 tile's rows evict each other while its strip block streams through L1: each thread copies such a row
// block with its rows kAliasPad floats further apart (AVX2 products +5-8% at 150-1200 rows on a Zen 4, the copy
// included: ~24 / N of the product's time). The AVX-512 tiles, whose strip block stays in L2, lost 1-3% by it.
constexpr int64_t kAliasPad = 16;
inline bool RowsShareL1Sets(int64_t depth) { return kLanes == 8 && depth % 512 == 0; }

// y = x w + bias (+ residual, or GELU): the strips split over the threads, x's rows in blocks of kStripRowBlock.
template <Epilogue E>
int StripProduct(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const int inputs = E == Epilogue::kAdd ? 4 : 3;
  if (nparam != inputs + 1 || !AllFloat32(nparam, dtypes)) return 1;
  if (ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 1) return 2;
  const int64_t rows = shapes[0][0], depth = shapes[0][1], cols = shapes[1][1];
  if (shapes[1][0] != depth || shapes[2][0] != cols) return 2;
  if (E == Epilogue::kAdd && (ndims[3] != 2 || shapes[3][0] != rows || shapes[3][1] != cols)) return 2;
  const auto *x = static_cast<const float *>(params[0]);
  const auto *w = static_cast<const float *>(params[1]);
  const auto *bias = static_cast<const float *>(params[2]);
  const auto *res = E == Epilogue::kAdd ? static_cast<const float *>(params[3]) : nullptr;
  auto *y = static_cast<float *>(params[inputs]);
  const int64_t strips = (cols + PCL_STRIP - 1) / PCL_STRIP;
  ParallelRows(strips, rows * depth * PCL_STRIP, [=](int64_t s0, int64_t s1) {
    thread_local std::vector<float> spaced;  // a row block of x, rows kAliasPad floats further apart
    for (int64_t r0 = 0; r0 < rows; r0 += kStripRowBlock) {
      const int64_t block = std::min(kStripRowBlock, rows - r0);
      const float *xb = x + r0 * depth;
      int64_t ldx = depth;
      if (block > 1 && RowsShareL1Sets(depth)) {
        ldx = depth + kAliasPad;
        spaced.resize(block * ldx);
        for (int64_t i = 0; i < block; ++i) std::memcpy(spaced.data() + i * ldx, xb + i * depth, depth * sizeof(float));
        xb = spaced.data();
      }
      StripRange<E>(xb, ldx, w, bias, res == nullptr ? nullptr : res + r0 * cols, y + r0 * cols, block, depth, cols,
                    s0, s1);
    }
  }, kMinMultiplyAddsPerThread);
  return 0;
}
}  // namespace

extern "C" int StripMatMul(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                           void *) {
  return StripProduct<Epilogue::kNone>(nparam, params, ndims, shapes, dtypes);
}
extern "C" int StripMatMulAdd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                              void *) {
  return StripProduct<Epilogue::kAdd>(nparam, params, ndims, shapes, dtypes);
}
extern "C" int StripMatMulGelu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                               void *) {
  return StripProduct<Epilogue::kGelu>(nparam, params, ndims, shapes, dtypes);
}
// y = x w^T, w [N, K] row-major: the columns split over the threads in whole 4-row tiles.
extern "C" int RowDotMatMul(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                            void *) {
  if (nparam != 3 || !AllFloat32(nparam, dtypes)) return 1;
  if (ndims[0] != 2 || ndims[1] != 2 || shapes[1][1] != shapes[0][1]) return 2;
  const int64_t rows = shapes[0][0], depth = shapes[0][1], cols = shapes[1][0];
  const auto *x = static_cast<const float *>(params[0]);
  const auto *w = static_cast<const float *>(params[1]);
  auto *y = static_cast<float *>(params[2]);
  ParallelRows((cols + 3) / 4, 4 * rows * depth, [=](int64_t t0, int64_t t1) {
    RowDotRange(x, w, y, rows, depth, cols, 4 * t0, std::min(cols, 4 * t1));
  }, kMinMultiplyAddsPerThread);
  return 0;
}
#endif  // PCL_SIMD

// BiasGelu and LayerNormRows return their first input's shape and type.
extern "C" std::vector<int64_t> BiasGeluInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
extern "C" TypeId BiasGeluInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> LayerNormRowsInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
extern "C" TypeId LayerNormRowsInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> DecodeAttentionInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[8][0] * shapes[2][2]};  // [B, H*D]: H from scale [H], D from the cache
}
extern "C" TypeId DecodeAttentionInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) {
  return type_ids[0];
}
extern "C" std::vector<int64_t> PrefillAttentionInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[7][0] * shapes[2][2]};  // [B*T, H*D]: static where B and T are dynamic
}
extern "C" TypeId PrefillAttentionInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) {
  return type_ids[0];
}
#ifdef PCL_SIMD
extern "C" std::vector<int64_t> StripMatMulInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[1][1]};  // [M, K] x [K, N]
}
extern "C" TypeId StripMatMulInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> StripMatMulAddInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[1][1]};
}
extern "C" TypeId StripMatMulAddInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> StripMatMulGeluInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[1][1]};
}
extern "C" TypeId StripMatMulGeluInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
extern "C" std::vector<int64_t> RowDotMatMulInferShape(int *ndims, int64_t **shapes, mindspore::AotExtra *) {
  return {shapes[0][0], shapes[1][0]};  // [M, K] x [N, K]^T
}
extern "C" TypeId RowDotMatMulInferType(std::vector<TypeId> type_ids, mindspore::AotExtra *) { return type_ids[0]; }
#endif  // PCL_SIMD

// The vector width in bits the strip and row-dot kernels were built for, 0 where they were not (no AVX2 with FMA):
// model/cpu_kernels.py offers them by this answer.
extern "C" int PclSimdBits() {
#ifdef PCL_SIMD
  return PCL_SIMD;
#else
  return 0;
#endif
}
