// LayerNorm over the last axis, forward and backward, one row at a time, rows split over OpenMP
// threads when there are enough of them. Follows layernorm_forward / layernorm_backward in
// minigpt/kernels/layernorm.py. Each row is a few passes over C floats that stay in L1 between
// passes: W floats at a time (simd.h), the last C % W one by one.
//
// Like llm.c, the forward saves only mean and rstd per row (2 floats, not a copy of xhat): the
// backward recomputes xhat = (x - mean) * rstd from x, which the caller keeps anyway.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

template <typename V>
SIMD_INLINE void forward_rows(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                              int64_t r0, int64_t r1, int64_t C, float eps) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t cv = C / W * W;
    for (int64_t r = r0; r < r1; r++) {
        const float* x_r = x + r * C;  // (C,)
        float* out_r = out + r * C;    // (C,)
        V acc = V{}, v, wv, bv;
        for (int64_t c = 0; c < cv; c += W) {
            std::memcpy(&v, x_r + c, sizeof(V));
            acc += v;
        }
        float sum = sum_lanes(acc);
        for (int64_t c = cv; c < C; c++) { sum += x_r[c]; }
        const float m = sum / C;
        // the variance from the centred values (two passes): E[x^2] - m^2 would cancel badly
        acc = V{};
        for (int64_t c = 0; c < cv; c += W) {
            std::memcpy(&v, x_r + c, sizeof(V));
            v -= m;
            acc += v * v;
        }
        float sq = sum_lanes(acc);
        for (int64_t c = cv; c < C; c++) { sq += (x_r[c] - m) * (x_r[c] - m); }
        const float s = 1.0f / std::sqrt(sq / C + eps);
        for (int64_t c = 0; c < cv; c += W) {
            std::memcpy(&v, x_r + c, sizeof(V));
            std::memcpy(&wv, w + c, sizeof(V));
            std::memcpy(&bv, b + c, sizeof(V));
            v = (v - m) * s * wv + bv;
            std::memcpy(out_r + c, &v, sizeof(V));
        }
        for (int64_t c = cv; c < C; c++) { out_r[c] = (x_r[c] - m) * s * w[c] + b[c]; }
        mean[r] = m;
        rstd[r] = s;
    }
}

// dx for rows [r0, r1), and their sums into dw_p and db_p (C,), the buffers of their part of the rows.
template <typename V>
SIMD_INLINE void backward_rows(float* dx, float* dw_p, float* db_p, const float* dout, const float* x,
                               const float* mean, const float* rstd, const float* w, int64_t r0, int64_t r1,
                               int64_t C) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t cv = C / W * W;
    for (int64_t r = r0; r < r1; r++) {
        const float* dout_r = dout + r * C;  // (C,)
        const float* x_r = x + r * C;        // (C,)
        float* dx_r = dx + r * C;            // (C,)
        const float m = mean[r], s = rstd[r];
        // g = dout * w is the gradient reaching xhat; dx needs mean(g) and mean(g * xhat)
        V g_acc = V{}, gx_acc = V{}, d, v, wv, t;
        for (int64_t c = 0; c < cv; c += W) {
            std::memcpy(&d, dout_r + c, sizeof(V));
            std::memcpy(&v, x_r + c, sizeof(V));
            std::memcpy(&wv, w + c, sizeof(V));
            const V g = d * wv;
            g_acc += g;
            gx_acc += g * ((v - m) * s);
        }
        float g_mean = sum_lanes(g_acc), gx_mean = sum_lanes(gx_acc);
        for (int64_t c = cv; c < C; c++) {
            const float g = dout_r[c] * w[c];
            g_mean += g;
            gx_mean += g * ((x_r[c] - m) * s);
        }
        g_mean /= C;
        gx_mean /= C;
        for (int64_t c = 0; c < cv; c += W) {
            std::memcpy(&d, dout_r + c, sizeof(V));
            std::memcpy(&v, x_r + c, sizeof(V));
            std::memcpy(&wv, w + c, sizeof(V));
            const V xhat = (v - m) * s;
            t = s * (d * wv - g_mean - xhat * gx_mean);
            std::memcpy(dx_r + c, &t, sizeof(V));
            std::memcpy(&t, dw_p + c, sizeof(V));
            t += d * xhat;
            std::memcpy(dw_p + c, &t, sizeof(V));
            std::memcpy(&t, db_p + c, sizeof(V));
            t += d;
            std::memcpy(db_p + c, &t, sizeof(V));
        }
        for (int64_t c = cv; c < C; c++) {
            const float xhat = (x_r[c] - m) * s;
            dx_r[c] = s * (dout_r[c] * w[c] - g_mean - xhat * gx_mean);
            dw_p[c] += dout_r[c] * xhat;
            db_p[c] += dout_r[c];
        }
    }
}

SIMD_AVX512 void forward_avx512(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                int64_t r0, int64_t r1, int64_t C, float eps) {
    forward_rows<vec16>(out, mean, rstd, x, w, b, r0, r1, C, eps);
}
SIMD_AVX2 void forward_avx2(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                            int64_t r0, int64_t r1, int64_t C, float eps) {
    forward_rows<vec8>(out, mean, rstd, x, w, b, r0, r1, C, eps);
}
void forward_portable(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t r0,
                      int64_t r1, int64_t C, float eps) {
    forward_rows<vec4>(out, mean, rstd, x, w, b, r0, r1, C, eps);
}

SIMD_AVX512 void backward_avx512(float* dx, float* dw_p, float* db_p, const float* dout, const float* x,
                                 const float* mean, const float* rstd, const float* w, int64_t r0, int64_t r1,
                                 int64_t C) {
    backward_rows<vec16>(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
}
SIMD_AVX2 void backward_avx2(float* dx, float* dw_p, float* db_p, const float* dout, const float* x, const float* mean,
                             const float* rstd, const float* w, int64_t r0, int64_t r1, int64_t C) {
    backward_rows<vec8>(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
}
void backward_portable(float* dx, float* dw_p, float* db_p, const float* dout, const float* x, const float* mean,
                       const float* rstd, const float* w, int64_t r0, int64_t r1, int64_t C) {
    backward_rows<vec4>(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (N > 1 && N * C >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(N, 1);
        if (path == SimdPath::avx512) {
            forward_avx512(out, mean, rstd, x, w, b, s.begin, s.end, C, eps);
        } else if (path == SimdPath::avx2) {
            forward_avx2(out, mean, rstd, x, w, b, s.begin, s.end, C, eps);
        } else {
            forward_portable(out, mean, rstd, x, w, b, s.begin, s.end, C, eps);
        }
    }
}

// dw and db sum over all rows. The rows are cut into parts of kRowsPerPart, each part summed into a buffer
// of its own by whichever thread takes it, and the parts are then added in order, column by column. So the
// bits depend neither on the thread count nor on which thread finishes first; per-thread buffers added in
// a critical section (this kernel's first version) gave other sums at 1, 2 and 3 threads, and at 3 threads
// other sums from run to run, so a run resumed with another OMP_NUM_THREADS drifted from the original.
constexpr int64_t kRowsPerPart = 128;

void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C) {
    const SimdPath path = simd_path();
    const int64_t parts = (N + kRowsPerPart - 1) / kRowsPerPart;
    std::vector<float> sums(static_cast<size_t>(2 * parts * C), 0.0f);  // part p: its dw (C,), then its db (C,)
    #pragma omp parallel if (N > 1 && N * C >= MIN_PARALLEL_WORK)
    {
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < parts; p++) {
            float* dw_p = sums.data() + 2 * p * C;  // (C,)
            float* db_p = dw_p + C;                 // (C,)
            const int64_t r0 = p * kRowsPerPart, r1 = std::min(N, r0 + kRowsPerPart);
            if (path == SimdPath::avx512) {
                backward_avx512(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
            } else if (path == SimdPath::avx2) {
                backward_avx2(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
            } else {
                backward_portable(dx, dw_p, db_p, dout, x, mean, rstd, w, r0, r1, C);
            }
        }
        #pragma omp for schedule(static)  // (after the implicit barrier of the loop above)
        for (int64_t c = 0; c < C; c++) {
            float dw_c = 0.0f, db_c = 0.0f;
            for (int64_t p = 0; p < parts; p++) {
                dw_c += sums[2 * p * C + c];
                db_c += sums[(2 * p + 1) * C + c];
            }
            dw[c] += dw_c;
            db[c] += db_c;
        }
    }
}
