// The gradient of a bias added to every row: db[c] += sum over rows r of dout[r, c]. Follows
// minigpt/kernels/bias_grad.py.
//
// One pass down the rows, W floats of a row at a time (simd.h), four vectors of columns at once so
// that four additions are in flight. Each column is summed from 0 down the rows in order and then
// added to db, whatever the SIMD width and however the columns are split, so the bits do not depend
// on the path or the thread count. Threads take whole blocks of 64 columns: a (4096 x 128) gradient
// goes to two threads, one block each.
#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

constexpr int64_t kColumnBlock = 64;  // the unit the threads split columns in

// Columns [c0, c1) of dout (N, C).
template <typename V>
SIMD_INLINE void column_sums(float* db, const float* dout, int64_t N, int64_t C, int64_t c0, int64_t c1) {
    constexpr int64_t W = Lanes<V>::W;
    int64_t c = c0;
    V s[4], v;
    for (; c + 4 * W <= c1; c += 4 * W) {
        s[0] = s[1] = s[2] = s[3] = V{};
        for (int64_t r = 0; r < N; r++) {
            for (int j = 0; j < 4; j++) {  // unrolled by the compiler: four independent sums
                std::memcpy(&v, dout + r * C + c + j * W, sizeof(V));
                s[j] += v;
            }
        }
        for (int j = 0; j < 4; j++) {
            std::memcpy(&v, db + c + j * W, sizeof(V));
            v += s[j];
            std::memcpy(db + c + j * W, &v, sizeof(V));
        }
    }
    for (; c + W <= c1; c += W) {
        s[0] = V{};
        for (int64_t r = 0; r < N; r++) {
            std::memcpy(&v, dout + r * C + c, sizeof(V));
            s[0] += v;
        }
        std::memcpy(&v, db + c, sizeof(V));
        v += s[0];
        std::memcpy(db + c, &v, sizeof(V));
    }
    for (; c < c1; c++) {
        float sum = 0.0f;
        for (int64_t r = 0; r < N; r++) { sum += dout[r * C + c]; }
        db[c] += sum;
    }
}

SIMD_AVX512 void column_sums_avx512(float* db, const float* dout, int64_t N, int64_t C, int64_t c0, int64_t c1) {
    column_sums<vec16>(db, dout, N, C, c0, c1);
}
SIMD_AVX2 void column_sums_avx2(float* db, const float* dout, int64_t N, int64_t C, int64_t c0, int64_t c1) {
    column_sums<vec8>(db, dout, N, C, c0, c1);
}
void column_sums_portable(float* db, const float* dout, int64_t N, int64_t C, int64_t c0, int64_t c1) {
    column_sums<vec4>(db, dout, N, C, c0, c1);
}

}  // namespace

void bias_grad(float* db, const float* dout, int64_t N, int64_t C) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (C >= 2 * kColumnBlock && N * C >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(C, kColumnBlock);
        if (path == SimdPath::avx512) {
            column_sums_avx512(db, dout, N, C, s.begin, s.end);
        } else if (path == SimdPath::avx2) {
            column_sums_avx2(db, dout, N, C, s.begin, s.end);
        } else {
            column_sums_portable(db, dout, N, C, s.begin, s.end);
        }
    }
}
