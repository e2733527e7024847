// Attention over a KV cache, for generation: the new positions' keys and values go into the cache,
// then each new query attends to every cached key up to its own position. Follows
// attention_cached in minigpt/kernels/attention.py.
//
// One call does what the NumPy reference does in five steps (split the fused qkv into heads, two
// writes into the cache, the attention, merging the heads), reading q, k and v straight out of the
// (B, Tn, 3, NH, hs) layout that c_attn produces and writing y in the (B, Tn, NH, hs) layout that
// c_proj reads: in a one-token step the copies and calls around the attention cost more than the
// attention itself. Each (batch, head, query) row is independent (attention_loops.h has the row);
// rows go to threads only when there are enough of them to repay waking the team.
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_ops.h"
#include "fastmath.h"
#include "kernels.h"

void attention_cached_forward(float* y, float* k_cache, float* v_cache, const float* qkv, int64_t B, int64_t Tn,
                              int64_t NH, int64_t hs, int64_t Tmax, int64_t pos) {
    const attention::TileOps& ops = attention::select_tile_ops();  // may throw: before the parallel region
    // No rows, no work; and an empty batch's pos must not size p below (see attention.cpp)
    if (B * NH * Tn == 0) { return; }
    const int64_t C = NH * hs;
    // the new keys and values into the cache, at positions pos .. pos+Tn-1
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < Tn; t++) {
            const float* qkv_bt = qkv + (b * Tn + t) * 3 * C;  // (3, NH, hs)
            for (int64_t h = 0; h < NH; h++) {
                const int64_t at = ((b * NH + h) * Tmax + pos + t) * hs;
                std::copy_n(qkv_bt + C + h * hs, hs, k_cache + at);
                std::copy_n(qkv_bt + 2 * C + h * hs, hs, v_cache + at);
            }
        }
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    const int64_t rows = B * NH * Tn;
    // each row reads (pos + t + 1) keys and values of hs floats: about rows * (pos + Tn) * hs * 2
    // multiply-adds in all
    [[maybe_unused]] const bool parallel = rows > 1 && rows * (pos + Tn) * hs >= MIN_PARALLEL_WORK;

    #pragma omp parallel if (parallel)
    {
        std::vector<float> p(pos + Tn);  // one row of weights
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t b = r / (NH * Tn), h = (r / Tn) % NH, t = r % Tn;
            const int64_t head = (b * NH + h) * Tmax * hs;  // (Tmax, hs) of this head's cache
            ops.cached_row(y + (b * Tn + t) * C + h * hs, qkv + (b * Tn + t) * 3 * C + h * hs, k_cache + head,
                           v_cache + head, pos + t + 1, hs, scale, p.data());
        }
    }
}
