// minigpt._core: the Python face of the kernels in kernels.h. minigpt/kernels.py is its only caller.
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

// Step 4: a fresh float32 array, zero-filled when the kernel adds into it (the backward kernels do).
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
    py::array_t<float> dx = new_array(shape_of(y), true);
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

static py::tuple attention_forward_py(const py::array& q, const py::array& k, const py::array& v,
                                      double dropout_p, uint64_t seed) {
    const std::string op = "attention_forward";
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
        attention_forward(out_ptr, lse_ptr, data(q), data(k), data(v), B, NH, T, hs, dropout_p, seed);
    }
    return py::make_tuple(out, lse);
}

static py::tuple attention_backward_py(const py::array& dout, const py::array& q, const py::array& k,
                                       const py::array& v, const py::array& out, const py::array& lse,
                                       double dropout_p, uint64_t seed) {
    const std::string op = "attention_backward";
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
        attention_backward(dq_ptr, dk_ptr, dv_ptr, data(dout), data(q), data(k), data(v), data(out), data(lse),
                           B, NH, T, hs, dropout_p, seed);
    }
    return py::make_tuple(dq, dk, dv);
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
    d["simd"] = "portable";  // plain C++ loops, vectorised by the compiler for the baseline ISA
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

    m.def("info", &info, "Build facts: {'num_threads', 'openmp', 'simd'}.");
}
