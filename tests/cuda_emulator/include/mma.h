// WMMA (nvcuda::wmma) for the CUDA emulator: the warp-wide matrix fragments of <mma.h>, as far as
// csrc/cuda/ uses them (TF32 16 x 16 x 8 products with float accumulators).
//
// CUDA leaves unspecified which lane holds which element of a fragment; code may only treat
// fragment.x[] elementwise. Here lane l holds elements l, l + 32, l + 64, ... of the tile (row-major),
// and mma_sync gathers the warp's fragments in a scratch area, as the tensor core's operand network
// does, so each lane computes only its own outputs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct tile_shape;
template <int M, int N, int K>
struct tile_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct tile_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct tile_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static constexpr int rows = tile_shape<Use, M, N, K>::rows, cols = tile_shape<Use, M, N, K>::cols;
    static constexpr int num_elements = rows * cols / 32;
    float x[num_elements];  // x[e] is element e * 32 + lane of the tile, row-major
};

// TF32: 10 explicit mantissa bits, rounded to nearest with ties away from zero (cvt.rna.tf32.f32).
inline float __float_to_tf32(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7f800000u) != 0x7f800000u) {  // inf and NaN stay as they are
        bits = (bits + 0x1000u) & ~0x1fffu;
    }
    std::memcpy(&f, &bits, 4);
    return f;
}

template <typename Use, int M, int N, int K, typename T, typename L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
    for (int i = 0; i < f.num_elements; i++) { f.x[i] = v; }
}

inline int lane() { return emu::linear_thread() % 32; }

// Element (r, c) of a tile at p with leading dimension ldm, stored row- or column-major.
inline float& at(float* p, int r, int c, unsigned ldm, bool row_major) { return row_major ? p[r * ldm + c] : p[c * ldm + r]; }

template <typename Use, int M, int N, int K, typename T, typename L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const float* p, unsigned ldm) {
    static_assert(!std::is_same_v<L, void>, "an accumulator is loaded with a layout argument");
    for (int e = 0; e < f.num_elements; e++) {
        const int idx = e * 32 + lane();
        f.x[e] = at(const_cast<float*>(p), idx / f.cols, idx % f.cols, ldm, std::is_same_v<L, row_major>);
    }
}

template <int M, int N, int K, typename T>
void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const float* p, unsigned ldm, layout_t layout) {
    for (int e = 0; e < f.num_elements; e++) {
        const int idx = e * 32 + lane();
        f.x[e] = at(const_cast<float*>(p), idx / f.cols, idx % f.cols, ldm, layout == mem_row_major);
    }
}

template <int M, int N, int K, typename T>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t layout) {
    for (int e = 0; e < f.num_elements; e++) {
        const int idx = e * 32 + lane();
        at(p, idx / f.cols, idx % f.cols, ldm, layout == mem_row_major) = f.x[e];
    }
}

// d = a b + c, products and sums in float32 (the tensor cores' order of the sums differs; only
// rounding, of order 1e-7 relative, can tell). Every lane of the warp must call it, as on a GPU.
template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
    float* sa = emu::warp_scratch(M * K + K * N + M * N);
    float *sb = sa + M * K, *sc = sb + K * N;
    const int l = lane();
    for (int e = 0; e < a.num_elements; e++) { sa[e * 32 + l] = a.x[e]; }
    for (int e = 0; e < b.num_elements; e++) { sb[e * 32 + l] = b.x[e]; }
    for (int e = 0; e < c.num_elements; e++) { sc[e * 32 + l] = c.x[e]; }
    emu::warp_barrier();
    float out[M * N / 32];
    for (int e = 0; e < M * N / 32; e++) {
        const int i = (e * 32 + l) / N, j = (e * 32 + l) % N;
        float acc = sc[i * N + j];
        for (int k = 0; k < K; k++) { acc += sa[i * K + k] * sb[k * N + j]; }
        out[e] = acc;
    }
    emu::warp_barrier();  // every lane has read the operands before any lane's next call writes them
    for (int e = 0; e < M * N / 32; e++) { d.x[e] = out[e]; }
}

}  // namespace wmma
}  // namespace nvcuda
