// Softmax cross-entropy, fused, over rows of logits. Follows minigpt/kernels/cross_entropy.py.
//
// The forward returns each row's loss and its log-sum-exp; the backward rebuilds softmax from
// the logits and lse in the same pass that writes the gradient, so probabilities (as large as
// the logits: B*T*V floats) are never stored.
#include <cmath>

#include "fastmath.h"
#include "kernels.h"

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t N,
                           int64_t V) {
    #pragma omp parallel for if (N * V >= MIN_PARALLEL_WORK)
    for (int64_t r = 0; r < N; r++) {
        const float* z = logits + r * V;  // (V,)
        float maxval = -INFINITY;
        for (int64_t v = 0; v < V; v++) { maxval = z[v] > maxval ? z[v] : maxval; }
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int64_t v = 0; v < V; v++) { sum += fast_exp(z[v] - maxval); }
        lse[r] = maxval + std::log(sum);
        // a negative target marks a padded position: it counts for nothing
        losses[r] = targets[r] < 0 ? 0.0f : lse[r] - z[targets[r]];
    }
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                            float dloss, int64_t N, int64_t V) {
    #pragma omp parallel for if (N * V >= MIN_PARALLEL_WORK)
    for (int64_t r = 0; r < N; r++) {
        if (targets[r] < 0) { continue; }  // padded: zero gradient (dlogits arrives zeroed)
        const float* z = logits + r * V;  // (V,)
        float* dz = dlogits + r * V;      // (V,)
        const float l = lse[r];
        #pragma omp simd
        for (int64_t v = 0; v < V; v++) { dz[v] += dloss * fast_exp(z[v] - l); }  // softmax * dloss
        dz[targets[r]] -= dloss;                                                 // minus the one-hot
    }
}
