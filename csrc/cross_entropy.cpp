// Softmax cross-entropy, fused, over rows of logits. Follows minigpt/kernels/cross_entropy.py.
//
// The forward returns each row's loss and its log-sum-exp; the backward rebuilds softmax from
// the logits and lse in the same pass that writes the gradient, so probabilities (as large as
// the logits: B*T*V floats) are never stored. Each row is read W floats at a time (simd.h), the
// last V % W one by one; rows are split over threads when there are enough of them.
#include <cmath>

#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

// Rows go in blocks of kRowBlock, each step done for the whole block before the next. A row is a
// chain of steps that wait for each other (its max, the exps, their sum, the log); with 65 logits
// each step is short, and one row at a time leaves the core waiting on the chain; four independent
// chains side by side ran 1.1-1.2x faster here.
constexpr int64_t kRowBlock = 4;

template <typename V>
SIMD_INLINE void forward_rows(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t r0,
                              int64_t r1, int64_t nV) {
    for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
        const int64_t b1 = b0 + kRowBlock < r1 ? b0 + kRowBlock : r1;
        float maxval[kRowBlock], sum[kRowBlock];
        for (int64_t r = b0; r < b1; r++) { maxval[r - b0] = max_of_row<V>(logits + r * nV, nV); }
        for (int64_t r = b0; r < b1; r++) { sum[r - b0] = sum_of_exp<V>(logits + r * nV, nV, maxval[r - b0], nullptr); }
        for (int64_t r = b0; r < b1; r++) {
            lse[r] = maxval[r - b0] + std::log(sum[r - b0]);
            // a negative target marks a padded position: it counts for nothing
            losses[r] = targets[r] < 0 ? 0.0f : lse[r] - logits[r * nV + targets[r]];
        }
    }
}

template <typename V>
SIMD_INLINE void backward_rows(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                               float dloss, int64_t r0, int64_t r1, int64_t nV) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t nv = nV / W * W;
    for (int64_t r = r0; r < r1; r++) {
        const float* z = logits + r * nV;  // (V,)
        float* dz = dlogits + r * nV;      // (V,)
        if (targets[r] < 0) {  // a padded position: no gradient
            std::memset(dz, 0, sizeof(float) * nV);
            continue;
        }
        const float l = lse[r];
        V e;
        // dz = dloss * softmax = dloss * 2^((z - lse) log2(e)). Not z log2(e) - lse log2(e), as the
        // forward's sum does: the rounding of lse log2(e) would move a probability near 1 by about
        // |lse| * 1e-7, as much as the whole gradient p - 1 of a confident prediction.
        for (int64_t v = 0; v < nv; v += W) {
            std::memcpy(&e, z + v, sizeof(V));
            e = (e - l) * LOG2_E;
            exp2_nonpositive(e);
            e *= dloss;
            std::memcpy(dz + v, &e, sizeof(V));
        }
        for (int64_t v = nv; v < nV; v++) { dz[v] = dloss * fast_exp(z[v] - l); }
        dz[targets[r]] -= dloss;  // minus the one-hot
    }
}

SIMD_AVX512 void forward_avx512(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t r0,
                                int64_t r1, int64_t nV) {
    forward_rows<vec16>(losses, lse, logits, targets, r0, r1, nV);
}
SIMD_AVX2 void forward_avx2(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t r0,
                            int64_t r1, int64_t nV) {
    forward_rows<vec8>(losses, lse, logits, targets, r0, r1, nV);
}
void forward_portable(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t r0, int64_t r1,
                      int64_t nV) {
    forward_rows<vec4>(losses, lse, logits, targets, r0, r1, nV);
}

SIMD_AVX512 void backward_avx512(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                                 float dloss, int64_t r0, int64_t r1, int64_t nV) {
    backward_rows<vec16>(dlogits, logits, lse, targets, dloss, r0, r1, nV);
}
SIMD_AVX2 void backward_avx2(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                             float dloss, int64_t r0, int64_t r1, int64_t nV) {
    backward_rows<vec8>(dlogits, logits, lse, targets, dloss, r0, r1, nV);
}
void backward_portable(float* dlogits, const float* logits, const float* lse, const int64_t* targets, float dloss,
                       int64_t r0, int64_t r1, int64_t nV) {
    backward_rows<vec4>(dlogits, logits, lse, targets, dloss, r0, r1, nV);
}

}  // namespace

// (V is the vocabulary size; inside this file nV, since V names the vector type of the templates.)
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t N,
                           int64_t nV) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (N > 1 && N * nV >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(N, 1);
        if (path == SimdPath::avx512) {
            forward_avx512(losses, lse, logits, targets, s.begin, s.end, nV);
        } else if (path == SimdPath::avx2) {
            forward_avx2(losses, lse, logits, targets, s.begin, s.end, nV);
        } else {
            forward_portable(losses, lse, logits, targets, s.begin, s.end, nV);
        }
    }
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                            float dloss, int64_t N, int64_t nV) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (N > 1 && N * nV >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(N, 1);
        if (path == SimdPath::avx512) {
            backward_avx512(dlogits, logits, lse, targets, dloss, s.begin, s.end, nV);
        } else if (path == SimdPath::avx2) {
            backward_avx2(dlogits, logits, lse, targets, dloss, s.begin, s.end, nV);
        } else {
            backward_portable(dlogits, logits, lse, targets, dloss, s.begin, s.end, nV);
        }
    }
}
