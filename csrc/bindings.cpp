// minigpt._core: the Python face of the kernels in kernels.h. minigpt/kernels/backend.py is its only importer.
//
// Every op does the same steps in the same order:
//   1. take NumPy arrays as py::array with noconvert(), so nothing is silently cast or copied;
//   2. check each array is float32 and C-contiguous (TypeError naming the array and the fix);
//   3. check ndims and shapes agree, then the scalars (ValueError naming arrays and shapes);
//   4. allocate the outputs;
//   5. release the GIL around the compute, so other Python threads run meanwhile.
// Taking py::array rather than py::array_t<float, c_style> lets step 2 say which array is wrong
// and why; pybind11 alone would only print every supported signature. The kernels never see a
// pybind11 type, and bad input from Python raises an exception, never crashes the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional, for matmul's bias

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#ifdef MINIGPT_OPENMP
#include <omp.h>
#endif

#include "kernels.h"

namespace py = pybind11;

// ----------------------------------------------------------------------------- shared checks

static std::vector<py::ssize_t> shape_of(const py::array& x) {
    return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim());
}

// "(2, 3, 4)", the way NumPy prints a shape
static std::string dims_str(const std::vector<py::ssize_t>& shape) {
    std::string s = "(";
    for (size_t d = 0; d < shape.size(); d++) {
        s += (d > 0 ? ", " : "") + std::to_string(shape[d]);
    }
    return s + (shape.size() == 1 ? ",)" : ")");
}

static std::string shape_str(const py::array& x) { return dims_str(shape_of(x)); }

// Step 2: float32 and C-contiguous, so the kernel can read the buffer as it is.
static void check_float32_contiguous(const std::string& op, const std::string& name, const py::array& x) {
    if (!py::isinstance<py::array_t<float>>(x)) {
        throw py::type_error(op + ": " + name + " must be float32, got " + std::string(py::str(x.dtype())) +
                             "; convert it with " + name + ".astype(np.float32)");
    }
    if (!(x.flags() & py::array::c_style)) {
        throw py::type_error(op + ": " + name + " must be C-contiguous, got a strided view of shape " +
                             shape_str(x) + " (a slice or a transpose); pass np.ascontiguousarray(" + name + ")");
    }
}

// Step 3, one array: its number of dimensions, with the shape expected in words.
static void check_ndim(const std::string& op, const std::string& name, const py::array& x, py::ssize_t ndim,
                       const std::string& expected) {
    if (x.ndim() != ndim) {
        throw py::value_error(op + ": " + name + " must be " + std::to_string(ndim) + "-D " + expected +
                              ", got shape " + shape_str(x));
    }
}

// Step 3, two arrays: x must have exactly the shape of ref.
static void check_same_shape(const std::string& op, const std::string& name, const py::array& x,
                             const std::string& ref_name, const py::array& ref) {
    const bool same = x.ndim() == ref.ndim() && std::equal(x.shape(), x.shape() + x.ndim(), ref.shape());
    if (!same) {
        throw py::value_error(op + ": " + name + " must have the shape of " + ref_name + " " + shape_str(ref) +
                              ", got " + shape_str(x));
    }
}

static void check_dropout_p(const std::string& op, double dropout_p) {
    if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {  // written so that NaN fails too
        throw py::value_error(op + ": dropout_p must be in [0, 1), got " +
                              std::string(py::repr(py::float_(dropout_p))));
    }
}

static const float* data(const py::array& x) { return static_cast<const float*>(x.data()); }

// Step 4: a fresh float32 array, zero-filled when the kernel adds into it (see kernels.h).
static py::array_t<float> new_array(const std::vector<py::ssize_t>& shape, bool zeroed) {
    py::array_t<float> x(shape);
    if (zeroed) { std::fill_n(x.mutable_data(), x.size(), 0.0f); }
    return x;
}

// ----------------------------------------------------------------------------- matmul

using MatmulKernel = void (*)(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                              bool, bool);

// matmul and matmul_naive share their checks; only the kernel differs.
static py::array_t<float> run_matmul(const std::string& op, MatmulKernel kernel, const py::array& a,
                                     const py::array& b, bool trans_a, bool trans_b,
                                     const std::optional<py::array>& bias) {
    check_float32_contiguous(op, "a", a);
    check_float32_contiguous(op, "b", b);
    if (bias) { check_float32_contiguous(op, "bias", *bias); }
    check_ndim(op, "a", a, 2, trans_a ? "(K, M) with trans_a" : "(M, K)");
    check_ndim(op, "b", b, 2, trans_b ? "(N, K) with trans_b" : "(K, N)");
    const py::ssize_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const py::ssize_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
    if (K != Kb) {
        throw py::value_error(op + ": inner sizes differ: op(a) is " + dims_str({M, K}) + " from a " +
                              shape_str(a) + (trans_a ? " with trans_a" : "") + ", op(b) is " + dims_str({Kb, N}) +
                              " from b " + shape_str(b) + (trans_b ? " with trans_b" : ""));
    }
    if (bias && !(bias->ndim() == 1 && bias->shape(0) == N)) {
        throw py::value_error(op + ": bias must have shape (N,) = " + dims_str({N}) + ", got " + shape_str(*bias));
    }
    py::array_t<float> out = new_array({M, N}, false);
    float* out_ptr = out.mutable_data();
    const float* bias_ptr = bias ? data(*bias) : nullptr;
    {
        py::gil_scoped_release release;
        kernel(out_ptr, data(a), data(b), bias_ptr, M, N, K, trans_a, trans_b);
    }
    return out;
}

static py::array_t<float> matmul(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                                 const std::optional<py::array>& bias) {
    return run_matmul("matmul", matmul_forward, a, b, trans_a, trans_b, bias);
}

static py::array_t<float> matmul_naive(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                                       const std::optional<py::array>& bias) {
    return run_matmul("matmul_naive", matmul_forward_naive, a, b, trans_a, trans_b, bias);
}

// ----------------------------------------------------------------------------- softmax

// Softmax runs over the last axis; all leading axes together are the rows.
static int64_t leading_size(const py::array& x) {
    int64_t rows = 1;
    for (py::ssize_t d = 0; d + 1 < x.ndim(); d++) { rows *= x.shape(d); }
    return rows;
}

static py::array_t<float> softmax_forward_py(const py::array& x) {
    const std::string op = "softmax_forward";
    check_float32_contiguous(op, "x", x);
    if (x.ndim() < 1) { throw py::value_error(op + ": x must have at least 1 dimension, got a 0-D array"); }
    const int64_t rows = leading_size(x), N = x.shape(x.ndim() - 1);
    py::array_t<float> y = new_array(shape_of(x), false);
    float* y_ptr = y.mutable_data();
    {
        py::gil_scoped_release release;
        softmax_forward(y_ptr, data(x), rows, N);
    }
    return y;
}

static py::array_t<float> softmax_backward_py(const py::array& dy, const py::array& y) {
    const std::string op = "softmax_backward";
    check_float32_contiguous(op, "dy", dy);
    check_float32_contiguous(op, "y", y);
    if (y.ndim() < 1) { throw py::value_error(op + ": y must have at least 1 dimension, got a 0-D array"); }
    check_same_shape(op, "dy", dy, "y", y);
    const int64_t rows = leading_size(y), N = y.shape(y.ndim() - 1);
    py::array_t<float> dx = new_array(shape_of(y), false);
    float* dx_ptr = dx.mutable_data();
    {
        py::gil_scoped_release release;
        softmax_backward(dx_ptr, data(dy), data(y), rows, N);
    }
    return dx;
}

// ----------------------------------------------------------------------------- attention

// q fixes (B, NH, T, hs); the other (B, NH, T, hs) arrays must match it.
static void check_qkv(const std::string& op, const py::array& q, const py::array& k, const py::array& v) {
    check_ndim(op, "q", q, 4, "(B, NH, T, hs)");
    check_same_shape(op, "k", k, "q", q);
    check_same_shape(op, "v", v, "q", q);
    if (q.shape(3) == 0) {  // the scale 1/sqrt(hs) would be infinite
        throw py::value_error(op + ": the head size hs (last axis of q) must be at least 1, got q " + shape_str(q));
    }
}

using AttentionForwardKernel = void (*)(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                       int64_t, int64_t, double, uint64_t);
using AttentionBackwardKernel = void (*)(float*, float*, float*, const float*, const float*, const float*,
                                         const float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                         double, uint64_t);

// The tuned and the naive kernels share their checks; only the kernel differs.
static py::tuple run_attention_forward(const std::string& op, AttentionForwardKernel kernel, const py::array& q,
                                       const py::array& k, const py::array& v, double dropout_p, uint64_t seed) {
    check_float32_contiguous(op, "q", q);
    check_float32_contiguous(op, "k", k);
    check_float32_contiguous(op, "v", v);
    check_qkv(op, q, k, v);
    check_dropout_p(op, dropout_p);
    const py::ssize_t B = q.shape(0), NH = q.shape(1), T = q.shape(2), hs = q.shape(3);
    py::array_t<float> out = new_array({B, NH, T, hs}, false);
    py::array_t<float> lse = new_array({B, NH, T}, false);
    float *out_ptr = out.mutable_data(), *lse_ptr = lse.mutable_data();
    {
        py::gil_scoped_release release;
        kernel(out_ptr, lse_ptr, data(q), data(k), data(v), B, NH, T, hs, dropout_p, seed);
    }
    return py::make_tuple(out, lse);
}

static py::tuple run_attention_backward(const std::string& op, AttentionBackwardKernel kernel, const py::array& dout,
                                        const py::array& q, const py::array& k, const py::array& v,
                                        const py::array& out, const py::array& lse, double dropout_p, uint64_t seed) {
    check_float32_contiguous(op, "dout", dout);
    check_float32_contiguous(op, "q", q);
    check_float32_contiguous(op, "k", k);
    check_float32_contiguous(op, "v", v);
    check_float32_contiguous(op, "out", out);
    check_float32_contiguous(op, "lse", lse);
    check_qkv(op, q, k, v);
    check_same_shape(op, "dout", dout, "q", q);
    check_same_shape(op, "out", out, "q", q);
    const py::ssize_t B = q.shape(0), NH = q.shape(1), T = q.shape(2), hs = q.shape(3);
    if (!(lse.ndim() == 3 && lse.shape(0) == B && lse.shape(1) == NH && lse.shape(2) == T)) {
        throw py::value_error(op + ": lse must have shape (B, NH, T) = " + dims_str({B, NH, T}) + " from q " +
                              shape_str(q) + ", got " + shape_str(lse));
    }
    check_dropout_p(op, dropout_p);
    py::array_t<float> dq = new_array({B, NH, T, hs}, true);
    py::array_t<float> dk = new_array({B, NH, T, hs}, true);
    py::array_t<float> dv = new_array({B, NH, T, hs}, true);
    float *dq_ptr = dq.mutable_data(), *dk_ptr = dk.mutable_data(), *dv_ptr = dv.mutable_data();
    {
        py::gil_scoped_release release;
        kernel(dq_ptr, dk_ptr, dv_ptr, data(dout), data(q), data(k), data(v), data(out), data(lse), B, NH, T, hs,
               dropout_p, seed);
    }
    return py::make_tuple(dq, dk, dv);
}

static py::tuple attention_forward_py(const py::array& q, const py::array& k, const py::array& v, double dropout_p,
                                      uint64_t seed) {
    return run_attention_forward("attention_forward", attention_forward, q, k, v, dropout_p, seed);
}

static py::tuple attention_forward_naive_py(const py::array& q, const py::array& k, const py::array& v,
                                            double dropout_p, uint64_t seed) {
    return run_attention_forward("attention_forward_naive", attention_forward_naive, q, k, v, dropout_p, seed);
}

static py::tuple attention_backward_py(const py::array& dout, const py::array& q, const py::array& k,
                                       const py::array& v, const py::array& out, const py::array& lse,
                                       double dropout_p, uint64_t seed) {
    return run_attention_backward("attention_backward", attention_backward, dout, q, k, v, out, lse, dropout_p, seed);
}

static py::tuple attention_backward_naive_py(const py::array& dout, const py::array& q, const py::array& k,
                                             const py::array& v, const py::array& out, const py::array& lse,
                                             double dropout_p, uint64_t seed) {
    return run_attention_backward("attention_backward_naive", attention_backward_naive, dout, q, k, v, out, lse,
                                  dropout_p, seed);
}

// qkv fixes (B, T, 3C) and, with n_head, hs = C / n_head.
static void check_fused_qkv(const std::string& op, const py::array& qkv, int64_t n_head) {
    check_ndim(op, "qkv", qkv, 3, "(B, T, 3C)");
    if (n_head < 1 || qkv.shape(2) == 0 || qkv.shape(2) % (3 * n_head) != 0) {
        throw py::value_error(op + ": the last axis of qkv " + shape_str(qkv) + " must be 3 * n_head * hs with hs >= 1, "
                              "for n_head = " + std::to_string(n_head));
    }
}

static py::tuple attention_forward_fused_py(const py::array& qkv, int64_t n_head, double dropout_p, uint64_t seed) {
    const std::string op = "attention_forward_fused";
    check_float32_contiguous(op, "qkv", qkv);
    check_fused_qkv(op, qkv, n_head);
    check_dropout_p(op, dropout_p);
    const py::ssize_t B = qkv.shape(0), T = qkv.shape(1), C = qkv.shape(2) / 3;
    py::array_t<float> y = new_array({B, T, C}, false);
    py::array_t<float> lse = new_array({B, n_head, T}, false);
    float *y_ptr = y.mutable_data(), *lse_ptr = lse.mutable_data();
    {
        py::gil_scoped_release release;
        attention_forward_fused(y_ptr, lse_ptr, data(qkv), B, n_head, T, C / n_head, dropout_p, seed);
    }
    return py::make_tuple(y, lse);
}

static py::array_t<float> attention_backward_fused_py(const py::array& dy, const py::array& qkv, const py::array& y,
                                                      const py::array& lse, int64_t n_head, double dropout_p,
                                                      uint64_t seed) {
    const std::string op = "attention_backward_fused";
    check_float32_contiguous(op, "dy", dy);
    check_float32_contiguous(op, "qkv", qkv);
    check_float32_contiguous(op, "y", y);
    check_float32_contiguous(op, "lse", lse);
    check_fused_qkv(op, qkv, n_head);
    const py::ssize_t B = qkv.shape(0), T = qkv.shape(1), C = qkv.shape(2) / 3;
    if (!(y.ndim() == 3 && y.shape(0) == B && y.shape(1) == T && y.shape(2) == C)) {
        throw py::value_error(op + ": y must have shape (B, T, C) = " + dims_str({B, T, C}) + " from qkv " +
                              shape_str(qkv) + ", got " + shape_str(y));
    }
    check_same_shape(op, "dy", dy, "y", y);
    if (!(lse.ndim() == 3 && lse.shape(0) == B && lse.shape(1) == n_head && lse.shape(2) == T)) {
        throw py::value_error(op + ": lse must have shape (B, n_head, T) = " + dims_str({B, n_head, T}) + ", got " +
                              shape_str(lse));
    }
    check_dropout_p(op, dropout_p);
    py::array_t<float> dqkv = new_array({B, T, 3 * C}, true);
    float* dqkv_ptr = dqkv.mutable_data();
    {
        py::gil_scoped_release release;
        attention_backward_fused(dqkv_ptr, data(dy), data(qkv), data(y), data(lse), B, n_head, T, C / n_head,
                                 dropout_p, seed);
    }
    return dqkv;
}

static py::array_t<float> attention_cached_forward_py(const py::array& qkv, py::array& k_cache, py::array& v_cache,
                                                      int64_t pos) {
    const std::string op = "attention_cached_forward";
    check_float32_contiguous(op, "qkv", qkv);
    check_float32_contiguous(op, "k_cache", k_cache);
    check_float32_contiguous(op, "v_cache", v_cache);
    check_ndim(op, "qkv", qkv, 3, "(B, Tn, 3C)");
    check_ndim(op, "k_cache", k_cache, 4, "(B, NH, Tmax, hs)");
    check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
    const py::ssize_t B = qkv.shape(0), Tn = qkv.shape(1);
    const py::ssize_t NH = k_cache.shape(1), Tmax = k_cache.shape(2), hs = k_cache.shape(3);
    if (k_cache.shape(0) != B || qkv.shape(2) != 3 * NH * hs) {
        throw py::value_error(op + ": qkv " + shape_str(qkv) + " must be (B, Tn, 3 * NH * hs) for caches " +
                              shape_str(k_cache) + " of (B, NH, Tmax, hs), i.e. " + dims_str({k_cache.shape(0), Tn,
                              3 * NH * hs}));
    }
    if (pos < 0 || pos > Tmax - Tn) {  // not pos + Tn > Tmax: a pos near 2^63 would overflow it and pass
        throw py::value_error(op + ": positions pos .. pos+Tn-1 (pos = " + std::to_string(pos) + ", Tn = " +
                              std::to_string(Tn) + ") must lie inside the cache's " + std::to_string(Tmax) +
                              " positions");
    }
    if (!k_cache.writeable() || !v_cache.writeable()) {
        throw py::value_error(op + ": k_cache and v_cache must be writeable (the new keys and values go into them)");
    }
    py::array_t<float> y = new_array({B, Tn, NH * hs}, false);
    float *y_ptr = y.mutable_data(), *k_ptr = static_cast<float*>(k_cache.mutable_data()),
          *v_ptr = static_cast<float*>(v_cache.mutable_data());
    if (Tn > 0) {
        py::gil_scoped_release release;
        attention_cached_forward(y_ptr, k_ptr, v_ptr, data(qkv), B, Tn, NH, hs, Tmax, pos);
    }
    return y;
}

// ----------------------------------------------------------------------------- layernorm, gelu

// The row length C of x and the number of rows N: (..., C) -> (N, C).
static std::pair<int64_t, int64_t> rows_and_width(const std::string& op, const std::string& name, const py::array& x) {
    if (x.ndim() < 1) { throw py::value_error(op + ": " + name + " must have at least 1 dimension, got a 0-D array"); }
    return {leading_size(x), x.shape(x.ndim() - 1)};
}

static void check_vector(const std::string& op, const std::string& name, const py::array& x, int64_t C) {
    if (!(x.ndim() == 1 && x.shape(0) == C)) {
        throw py::value_error(op + ": " + name + " must have shape " + dims_str({C}) + ", got " + shape_str(x));
    }
}

static py::tuple layernorm_forward_py(const py::array& x, const py::array& w, const py::array& b, double eps) {
    const std::string op = "layernorm_forward";
    check_float32_contiguous(op, "x", x);
    check_float32_contiguous(op, "w", w);
    check_float32_contiguous(op, "b", b);
    auto [N, C] = rows_and_width(op, "x", x);
    check_vector(op, "w", w, C);
    check_vector(op, "b", b, C);
    std::vector<py::ssize_t> rows(x.shape(), x.shape() + x.ndim() - 1);
    py::array_t<float> out = new_array(shape_of(x), false), mean = new_array(rows, false), rstd = new_array(rows, false);
    float *out_ptr = out.mutable_data(), *mean_ptr = mean.mutable_data(), *rstd_ptr = rstd.mutable_data();
    {
        py::gil_scoped_release release;
        layernorm_forward(out_ptr, mean_ptr, rstd_ptr, data(x), data(w), data(b), N, C, static_cast<float>(eps));
    }
    return py::make_tuple(out, mean, rstd);
}

static py::tuple layernorm_backward_py(const py::array& dout, const py::array& x, const py::array& mean,
                                       const py::array& rstd, const py::array& w) {
    const std::string op = "layernorm_backward";
    for (auto [name, arr] : {std::pair{"dout", &dout}, {"x", &x}, {"mean", &mean}, {"rstd", &rstd}, {"w", &w}}) {
        check_float32_contiguous(op, name, *arr);
    }
    auto [N, C] = rows_and_width(op, "x", x);
    check_same_shape(op, "dout", dout, "x", x);
    check_vector(op, "w", w, C);
    if (mean.size() != N || rstd.size() != N) {
        throw py::value_error(op + ": mean and rstd must hold one value per row of x " + shape_str(x) + ", got " +
                              shape_str(mean) + " and " + shape_str(rstd));
    }
    py::array_t<float> dx = new_array(shape_of(x), false), dw = new_array({C}, true), db = new_array({C}, true);
    float *dx_ptr = dx.mutable_data(), *dw_ptr = dw.mutable_data(), *db_ptr = db.mutable_data();
    {
        py::gil_scoped_release release;
        layernorm_backward(dx_ptr, dw_ptr, db_ptr, data(dout), data(x), data(mean), data(rstd), data(w), N, C);
    }
    return py::make_tuple(dx, dw, db);
}

static py::array_t<float> gelu_forward_py(const py::array& x) {
    check_float32_contiguous("gelu_forward", "x", x);
    py::array_t<float> out = new_array(shape_of(x), false);
    float* out_ptr = out.mutable_data();
    {
        py::gil_scoped_release release;
        gelu_forward(out_ptr, data(x), x.size());
    }
    return out;
}

static py::array_t<float> gelu_backward_py(const py::array& dout, const py::array& x) {
    const std::string op = "gelu_backward";
    check_float32_contiguous(op, "dout", dout);
    check_float32_contiguous(op, "x", x);
    check_same_shape(op, "dout", dout, "x", x);
    py::array_t<float> dx = new_array(shape_of(x), false);
    float* dx_ptr = dx.mutable_data();
    {
        py::gil_scoped_release release;
        gelu_backward(dx_ptr, data(dout), data(x), x.size());
    }
    return dx;
}

// ----------------------------------------------------------------------------- cross-entropy

// targets: int64, C-contiguous, shape (N,), each in [0, V) or negative (ignored).
static const int64_t* checked_targets(const std::string& op, const py::array& targets, int64_t N, int64_t V) {
    if (!py::isinstance<py::array_t<int64_t>>(targets)) {
        throw py::type_error(op + ": targets must be int64, got " + std::string(py::str(targets.dtype())) +
                             "; convert it with targets.astype(np.int64)");
    }
    if (!(targets.flags() & py::array::c_style) || targets.ndim() != 1 || targets.shape(0) != N) {
        throw py::value_error(op + ": targets must be a contiguous " + dims_str({N}) + " array, one per row of "
                              "logits, got " + shape_str(targets));
    }
    const int64_t* t = static_cast<const int64_t*>(targets.data());
    for (int64_t r = 0; r < N; r++) {
        if (t[r] >= V) {
            throw py::value_error(op + ": target " + std::to_string(t[r]) + " at row " + std::to_string(r) +
                                  " is out of range for " + std::to_string(V) + " classes");
        }
    }
    return t;
}

static py::tuple cross_entropy_forward_py(const py::array& logits, const py::array& targets) {
    const std::string op = "cross_entropy_forward";
    check_float32_contiguous(op, "logits", logits);
    check_ndim(op, "logits", logits, 2, "(N, V)");
    const int64_t N = logits.shape(0), V = logits.shape(1);
    const int64_t* t = checked_targets(op, targets, N, V);
    py::array_t<float> losses = new_array({N}, false), lse = new_array({N}, false);
    float *losses_ptr = losses.mutable_data(), *lse_ptr = lse.mutable_data();
    {
        py::gil_scoped_release release;
        cross_entropy_forward(losses_ptr, lse_ptr, data(logits), t, N, V);
    }
    return py::make_tuple(losses, lse);
}

static py::array_t<float> cross_entropy_backward_py(const py::array& logits, const py::array& lse,
                                                    const py::array& targets, double dloss) {
    const std::string op = "cross_entropy_backward";
    check_float32_contiguous(op, "logits", logits);
    check_float32_contiguous(op, "lse", lse);
    check_ndim(op, "logits", logits, 2, "(N, V)");
    const int64_t N = logits.shape(0), V = logits.shape(1);
    check_vector(op, "lse", lse, N);
    const int64_t* t = checked_targets(op, targets, N, V);
    py::array_t<float> dlogits = new_array({N, V}, false);
    float* dlogits_ptr = dlogits.mutable_data();
    {
        py::gil_scoped_release release;
        cross_entropy_backward(dlogits_ptr, data(logits), data(lse), t, static_cast<float>(dloss), N, V);
    }
    return dlogits;
}

// ----------------------------------------------------------------------------- bias gradient

// db given: added into in place (a layer's gradient, often a view of the flat buffer); None: a new one.
static py::array bias_grad_py(const py::array& dout, const py::object& db_obj) {
    const std::string op = "bias_grad";
    check_float32_contiguous(op, "dout", dout);
    check_ndim(op, "dout", dout, 2, "(N, C)");
    const py::ssize_t N = dout.shape(0), C = dout.shape(1);
    py::array db = db_obj.is_none() ? py::array(new_array({C}, true)) : db_obj.cast<py::array>();
    check_float32_contiguous(op, "db", db);
    if (!(db.ndim() == 1 && db.shape(0) == C)) {
        throw py::value_error(op + ": db must have shape (C,) = " + dims_str({C}) + " from dout " + shape_str(dout) +
                              ", got " + shape_str(db));
    }
    if (!db.writeable()) { throw py::value_error(op + ": db must be writeable (the sums are added into it)"); }
    float* db_ptr = static_cast<float*>(db.mutable_data());
    {
        py::gil_scoped_release release;
        bias_grad(db_ptr, data(dout), N, C);
    }
    return db;
}

// ----------------------------------------------------------------------------- adamw

static void adamw_update_py(py::array& p, py::array& m, py::array& v, const py::array& g, double lr, double beta1,
                            double beta2, double eps, double weight_decay, double bias1, double bias2) {
    const std::string op = "adamw_update";
    // as minigpt/kernels/adamw.py checks them: bias1 = 0 would divide by zero, NaN spread to every weight
    const bool finite = std::isfinite(lr) && std::isfinite(beta1) && std::isfinite(beta2) && std::isfinite(eps) &&
                        std::isfinite(weight_decay) && std::isfinite(bias1) && std::isfinite(bias2);
    if (!(finite && lr >= 0 && eps >= 0 && weight_decay >= 0 && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 &&
          bias1 > 0 && bias1 <= 1 && bias2 > 0 && bias2 <= 1)) {
        throw py::value_error(op + ": lr, betas, eps, weight_decay, bias1, bias2 must be finite, lr, eps and "
                              "weight_decay >= 0, the betas in [0, 1) and bias1, bias2 (1 - beta^t) in (0, 1]");
    }
    check_float32_contiguous(op, "g", g);
    for (auto [name, arr] : {std::pair{"p", &p}, {"m", &m}, {"v", &v}}) {
        check_float32_contiguous(op, name, *arr);
        check_same_shape(op, name, *arr, "g", g);
        if (!arr->writeable()) { throw py::value_error(op + ": " + std::string(name) + " must be writeable"); }
    }
    float *p_ptr = static_cast<float*>(p.mutable_data()), *m_ptr = static_cast<float*>(m.mutable_data()),
          *v_ptr = static_cast<float*>(v.mutable_data());
    {
        py::gil_scoped_release release;
        adamw_update(p_ptr, m_ptr, v_ptr, data(g), p.size(), static_cast<float>(lr), static_cast<float>(beta1),
                     static_cast<float>(beta2), static_cast<float>(eps), static_cast<float>(weight_decay),
                     static_cast<float>(bias1), static_cast<float>(bias2));
    }
}

// ----------------------------------------------------------------------------- the FMA peak

static py::dict fma_peak_py(py::object path, int threads, double seconds, int rounds) {
    const std::string name = path.is_none() ? std::string(matmul_simd_path()) : path.cast<std::string>();
#ifdef MINIGPT_OPENMP
    if (threads == 0) { threads = omp_get_max_threads(); }
#else
    if (threads == 0) { threads = 1; }
#endif
    if (threads < 1 || rounds < 1 || !(seconds > 0.0) || seconds > 60.0) {
        throw py::value_error("fma_peak: threads must be >= 1 (0: all), rounds >= 1, seconds in (0, 60]");
    }
    std::vector<double> gflops(rounds);
    int ran = 1;
    {
        py::gil_scoped_release release;
        ran = fma_peak(gflops.data(), name.c_str(), threads, seconds, rounds);
    }
    std::vector<double> sorted = gflops;
    std::sort(sorted.begin(), sorted.end());
    py::dict d;
    d["simd"] = name;
    d["threads"] = ran;  // the threads that ran, which OpenMP (OMP_THREAD_LIMIT) or a build without it may cap
    d["gflops"] = gflops;
    d["best"] = sorted.back();
    d["median"] = sorted[sorted.size() / 2];
    return d;
}

// ----------------------------------------------------------------------------- info

static py::dict info() {
    py::dict d;
#ifdef MINIGPT_OPENMP
    d["num_threads"] = omp_get_max_threads();
    d["openmp"] = true;
#else
    d["num_threads"] = 1;
    d["openmp"] = false;
#endif
    d["simd"] = matmul_simd_path();  // the matmul micro-kernel in use; MINIGPT_SIMD forces a lower one
    d["attention_simd"] = attention_simd();  // the attention tile kernels in use, chosen the same way
    py::dict small_m;  // products with at most this many rows of op(a) skip the packing, per variant
    small_m["nn"] = matmul_small_m(false, false);
    small_m["nt"] = matmul_small_m(false, true);
    small_m["tn"] = matmul_small_m(true, false);
    small_m["tt"] = matmul_small_m(true, true);
    d["matmul_small_m"] = small_m;
    return d;
}

// ----------------------------------------------------------------------------- module

PYBIND11_MODULE(_core, m) {
    m.doc() = "C++/OpenMP kernels of minigpt (float32, C-contiguous arrays); call them through minigpt.kernels";

    m.def("matmul", &matmul, "out = op(a) @ op(b) (+ bias), op(x) = x.T when asked. a: (M, K) or (K, M) with "
          "trans_a; b: (K, N) or (N, K) with trans_b; bias: (N,) or None. Returns out: (M, N).",
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("bias").noconvert() = py::none());
    m.def("matmul_naive", &matmul_naive, "matmul by the textbook triple loop, single-threaded: same "
          "arguments and result as matmul, for teaching and as a baseline.",
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("bias").noconvert() = py::none());

    m.def("softmax_forward", &softmax_forward_py, "y = softmax(x) over the last axis. x: (..., N) -> y: (..., N).",
          py::arg("x").noconvert());
    m.def("softmax_backward", &softmax_backward_py, "dx = y * (dy - sum(dy * y)) over the last axis. "
          "dy, y: (..., N) -> dx: (..., N).",
          py::arg("dy").noconvert(), py::arg("y").noconvert());

    m.def("attention_forward", &attention_forward_py, "Causal attention with attention dropout. q, k, v: "
          "(B, NH, T, hs); dropout_p in [0, 1); seed picks the dropout mask. Returns (out (B, NH, T, hs), "
          "lse (B, NH, T)).",
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_backward", &attention_backward_py, "Gradients of attention_forward. dout, q, k, v, out: "
          "(B, NH, T, hs); lse: (B, NH, T). Returns (dq, dk, dv), each (B, NH, T, hs).",
          py::arg("dout").noconvert(), py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("out").noconvert(), py::arg("lse").noconvert(),
          py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_forward_naive", &attention_forward_naive_py, "attention_forward one row of weights at a "
          "time: same arguments and results, for teaching and as a second opinion.",
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_backward_naive", &attention_backward_naive_py, "attention_backward one row of weights at "
          "a time: same arguments and results, for teaching and as a second opinion.",
          py::arg("dout").noconvert(), py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("out").noconvert(), py::arg("lse").noconvert(),
          py::arg("dropout_p") = 0.0, py::arg("seed") = 0);

    m.def("attention_forward_fused", &attention_forward_fused_py, "attention_forward on the heads inside a fused "
          "projection, read in place. qkv: (B, T, 3C), q, k, v side by side; C = n_head * hs. Returns (y (B, T, C) "
          "with the heads side by side, lse (B, n_head, T)).",
          py::arg("qkv").noconvert(), py::arg("n_head"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_backward_fused", &attention_backward_fused_py, "Gradients of attention_forward_fused. dy, y: "
          "(B, T, C); qkv: (B, T, 3C); lse: (B, n_head, T). Returns dqkv (B, T, 3C).",
          py::arg("dy").noconvert(), py::arg("qkv").noconvert(), py::arg("y").noconvert(),
          py::arg("lse").noconvert(), py::arg("n_head"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);

    m.def("attention_cached_forward", &attention_cached_forward_py, "Attention of Tn new positions over a KV "
          "cache (generation). qkv: (B, Tn, 3C) from c_attn; k_cache, v_cache: (B, NH, Tmax, hs), written in place "
          "at pos .. pos+Tn-1. Query t sees keys 0 .. pos+t. Returns y: (B, Tn, C), heads side by side.",
          py::arg("qkv").noconvert(), py::arg("k_cache").noconvert(), py::arg("v_cache").noconvert(),
          py::arg("pos"));

    m.def("layernorm_forward", &layernorm_forward_py, "LayerNorm over the last axis. x: (..., C), w, b: (C,). "
          "Returns (out (..., C), mean (...), rstd (...)).",
          py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("b").noconvert(), py::arg("eps") = 1e-5);
    m.def("layernorm_backward", &layernorm_backward_py, "Gradients of layernorm_forward from the saved mean and "
          "rstd. Returns (dx, dw, db).",
          py::arg("dout").noconvert(), py::arg("x").noconvert(), py::arg("mean").noconvert(),
          py::arg("rstd").noconvert(), py::arg("w").noconvert());
    m.def("gelu_forward", &gelu_forward_py, "GELU (tanh form), elementwise.", py::arg("x").noconvert());
    m.def("gelu_backward", &gelu_backward_py, "dx = dout * gelu'(x).", py::arg("dout").noconvert(),
          py::arg("x").noconvert());
    m.def("cross_entropy_forward", &cross_entropy_forward_py, "Per-row softmax cross-entropy. logits: (N, V) "
          "float32, targets: (N,) int64 (negative = ignored). Returns (losses (N,), lse (N,)).",
          py::arg("logits").noconvert(), py::arg("targets").noconvert());
    m.def("cross_entropy_backward", &cross_entropy_backward_py, "dlogits = dloss * (softmax - onehot) on counted "
          "rows. Returns dlogits (N, V).",
          py::arg("logits").noconvert(), py::arg("lse").noconvert(), py::arg("targets").noconvert(),
          py::arg("dloss"));
    m.def("bias_grad", &bias_grad_py, "db[c] += sum over rows of dout[:, c]. dout: (N, C) float32; db: (C,) "
          "float32, added into in place and returned, or None for a new one.",
          py::arg("dout").noconvert(), py::arg("db") = py::none());
    m.def("adamw_update", &adamw_update_py, "One AdamW step of one parameter, in place (p, m, v).",
          py::arg("p").noconvert(), py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("g").noconvert(),
          py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
          py::arg("bias1"), py::arg("bias2"));

    m.def("fma_peak", &fma_peak_py, "The FP32 multiply-add rate of `threads` threads (0: all) on a SIMD path "
          "(None: the one the kernels run), measured over `rounds` rounds of about `seconds` each: "
          "{'simd', 'threads', 'gflops': [per round], 'best', 'median'}, in GFLOP/s.",
          py::arg("path") = py::none(), py::arg("threads") = 0, py::arg("seconds") = 0.2, py::arg("rounds") = 5);

    m.def("info", &info,
          "Build facts: {'num_threads', 'openmp', 'simd', 'attention_simd', "
          "'matmul_small_m': {'nn', 'nt', 'tn', 'tt'}}.");
}
