// minigpt._cuda: the Python face of the CUDA kernels in kernels_cuda.h. minigpt/kernels/ is its only
// caller; the functions have the names and arguments of minigpt._core's, on CuPy arrays.
//
// Every op does the same steps in the same order as bindings.cpp:
//   1. take each array as a plain Python object and read what CuPy says about it (shape, dtype,
//      C-contiguity, device, data.ptr), so nothing is converted, copied or moved between devices;
//   2. check each is a CuPy array on the current device, float32 (int64 for ids) and C-contiguous
//      (TypeError naming the array and the fix);
//   3. check ndims and shapes agree, then the scalars (ValueError naming arrays and shapes);
//   4. allocate the outputs with CuPy (its memory pool), zero-filled where the kernel adds into them;
//   5. launch on CuPy's current stream with the GIL released. Launches are asynchronous: the
//      results are CuPy arrays that later CuPy work on the same stream waits for.
// The kernels see raw device pointers and a stream, never a pybind11 type, and a CUDA error becomes
// a RuntimeError (common.cuh): bad input from Python never crashes the process.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "kernels_cuda.h"

namespace py = pybind11;
using namespace pybind11::literals;

// ----------------------------------------------------------------------------- shared checks

static py::module_ cupy() { return py::module_::import("cupy"); }  // a dictionary lookup once imported

// What the kernels need to know about a checked CuPy array.
struct DeviceArray {
    std::vector<int64_t> shape;
    uintptr_t ptr;

    int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
    int64_t size() const {
        int64_t n = 1;
        for (int64_t s : shape) { n *= s; }
        return n;
    }
    float* f32() const { return reinterpret_cast<float*>(ptr); }
    const int64_t* i64() const { return reinterpret_cast<const int64_t*>(ptr); }
};

// "(2, 3, 4)", the way NumPy prints a shape
static std::string dims_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t d = 0; d < shape.size(); d++) { s += (d > 0 ? ", " : "") + std::to_string(shape[d]); }
    return s + (shape.size() == 1 ? ",)" : ")");
}

static std::string type_name(const py::handle& x) {
    const py::handle t = py::type::handle_of(x);
    return std::string(py::str(t.attr("__module__"))) + "." + std::string(py::str(t.attr("__qualname__")));
}

// Steps 1 and 2: a CuPy array of the given dtype, C-contiguous, on the current device.
static DeviceArray device_array(const std::string& op, const std::string& name, const py::object& x,
                                const std::string& dtype = "float32") {
    py::module_ cp = cupy();
    if (!py::isinstance(x, cp.attr("ndarray"))) {
        throw py::type_error(op + ": " + name + " must be a CuPy array (backend='cuda' works on device arrays), got " +
                             type_name(x) + "; move it to the GPU with cupy.asarray(" + name + ")");
    }
    const std::string got = py::str(x.attr("dtype"));
    if (got != dtype) {
        throw py::type_error(op + ": " + name + " must be " + dtype + ", got " + got + "; convert it with " + name +
                             ".astype(cupy." + dtype + ")");
    }
    DeviceArray a;
    const py::tuple shape = x.attr("shape");
    for (const py::handle& s : shape) { a.shape.push_back(s.cast<int64_t>()); }
    if (!x.attr("flags").attr("c_contiguous").cast<bool>()) {
        throw py::type_error(op + ": " + name + " must be C-contiguous, got a strided view of shape " +
                             dims_str(a.shape) + " (a slice or a transpose); pass cupy.ascontiguousarray(" + name +
                             ")");
    }
    const int device = x.attr("device").attr("id").cast<int>();
    const int current = cp.attr("cuda").attr("runtime").attr("getDevice")().cast<int>();
    if (device != current) {
        throw py::value_error(op + ": " + name + " is on GPU " + std::to_string(device) +
                              " but the current device is " + std::to_string(current) +
                              "; run under `with cupy.cuda.Device(" + std::to_string(device) + "):` or move it there");
    }
    a.ptr = x.attr("data").attr("ptr").cast<uintptr_t>();
    return a;
}

// Step 3, one array: its number of dimensions, with the shape expected in words.
static void check_ndim(const std::string& op, const std::string& name, const DeviceArray& x, int64_t ndim,
                       const std::string& expected) {
    if (x.ndim() != ndim) {
        throw py::value_error(op + ": " + name + " must be " + std::to_string(ndim) + "-D " + expected +
                              ", got shape " + dims_str(x.shape));
    }
}

// Step 3, two arrays: x must have exactly the shape of ref.
static void check_same_shape(const std::string& op, const std::string& name, const DeviceArray& x,
                             const std::string& ref_name, const DeviceArray& ref) {
    if (x.shape != ref.shape) {
        throw py::value_error(op + ": " + name + " must have the shape of " + ref_name + " " + dims_str(ref.shape) +
                              ", got " + dims_str(x.shape));
    }
}

static void check_vector(const std::string& op, const std::string& name, const DeviceArray& x, int64_t C) {
    if (!(x.ndim() == 1 && x.shape[0] == C)) {
        throw py::value_error(op + ": " + name + " must have shape " + dims_str({C}) + ", got " + dims_str(x.shape));
    }
}

static void check_dropout_p(const std::string& op, double dropout_p) {
    if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {  // written so that NaN fails too
        throw py::value_error(op + ": dropout_p must be in [0, 1), got " +
                              std::string(py::repr(py::float_(dropout_p))));
    }
}

// (..., N) -> (rows, N): the row-wise kernels run over rows of the last axis.
static std::pair<int64_t, int64_t> rows_and_width(const std::string& op, const std::string& name,
                                                  const DeviceArray& x) {
    if (x.ndim() < 1) { throw py::value_error(op + ": " + name + " must have at least 1 dimension, got a 0-D array"); }
    const int64_t width = x.shape.back();
    return {width == 0 ? 0 : x.size() / width, width};
}

// Step 4: a fresh float32 CuPy array, zero-filled when the kernel adds into it.
static std::pair<py::object, float*> new_array(const std::vector<int64_t>& shape, bool zeroed) {
    py::tuple dims(shape.size());
    for (size_t d = 0; d < shape.size(); d++) { dims[d] = py::int_(shape[d]); }
    py::object x = cupy().attr(zeroed ? "zeros" : "empty")(dims, "dtype"_a = "float32");
    return {x, reinterpret_cast<float*>(x.attr("data").attr("ptr").cast<uintptr_t>())};
}

// Step 5: the stream CuPy's own operations run on now, so ours are ordered with them.
static cudaStream_t current_stream() {
    const py::object stream = cupy().attr("cuda").attr("get_current_stream")();
    return reinterpret_cast<cudaStream_t>(stream.attr("ptr").cast<uintptr_t>());
}

// ----------------------------------------------------------------------------- matmul

using MatmulKernel = void (*)(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, bool, bool,
                              cudaStream_t);

// matmul, matmul_staged, matmul_tiled and matmul_naive share their checks; only the kernel differs.
static py::object run_matmul(const std::string& op, MatmulKernel kernel, const py::object& a_obj,
                             const py::object& b_obj, bool trans_a, bool trans_b, const py::object& bias_obj) {
    const DeviceArray a = device_array(op, "a", a_obj), b = device_array(op, "b", b_obj);
    const bool has_bias = !bias_obj.is_none();
    DeviceArray bias;
    if (has_bias) { bias = device_array(op, "bias", bias_obj); }
    check_ndim(op, "a", a, 2, trans_a ? "(K, M) with trans_a" : "(M, K)");
    check_ndim(op, "b", b, 2, trans_b ? "(N, K) with trans_b" : "(K, N)");
    const int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
    const int64_t Kb = trans_b ? b.shape[1] : b.shape[0], N = trans_b ? b.shape[0] : b.shape[1];
    if (K != Kb) {
        throw py::value_error(op + ": inner sizes differ: op(a) is " + dims_str({M, K}) + " from a " +
                              dims_str(a.shape) + (trans_a ? " with trans_a" : "") + ", op(b) is " +
                              dims_str({Kb, N}) + " from b " + dims_str(b.shape) + (trans_b ? " with trans_b" : ""));
    }
    if (has_bias && !(bias.ndim() == 1 && bias.shape[0] == N)) {
        throw py::value_error(op + ": bias must have shape (N,) = " + dims_str({N}) + ", got " + dims_str(bias.shape));
    }
    auto [out, out_ptr] = new_array({M, N}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        kernel(out_ptr, a.f32(), b.f32(), has_bias ? bias.f32() : nullptr, M, N, K, trans_a, trans_b, stream);
    }
    return out;
}

static py::object matmul(const py::object& a, const py::object& b, bool trans_a, bool trans_b, const py::object& bias) {
    return run_matmul("matmul", matmul_forward_cuda, a, b, trans_a, trans_b, bias);
}

static py::object matmul_staged(const py::object& a, const py::object& b, bool trans_a, bool trans_b,
                                const py::object& bias) {
    return run_matmul("matmul_staged", matmul_forward_staged_cuda, a, b, trans_a, trans_b, bias);
}

static py::object matmul_tf32_mma(const py::object& a, const py::object& b, bool trans_a, bool trans_b,
                                  const py::object& bias) {
    return run_matmul("matmul_tf32_mma", matmul_forward_tf32_mma_cuda, a, b, trans_a, trans_b, bias);
}

static py::object matmul_tf32_wgmma_overlapped(const py::object& a, const py::object& b, bool trans_a, bool trans_b,
                                               const py::object& bias) {
    return run_matmul("matmul_tf32_wgmma_overlapped", matmul_forward_tf32_wgmma_overlapped_cuda, a, b, trans_a,
                      trans_b, bias);
}

static py::object matmul_tiled(const py::object& a, const py::object& b, bool trans_a, bool trans_b,
                               const py::object& bias) {
    return run_matmul("matmul_tiled", matmul_forward_tiled_cuda, a, b, trans_a, trans_b, bias);
}

static py::object matmul_naive(const py::object& a, const py::object& b, bool trans_a, bool trans_b,
                               const py::object& bias) {
    return run_matmul("matmul_naive", matmul_forward_naive_cuda, a, b, trans_a, trans_b, bias);
}

// ----------------------------------------------------------------------------- bias gradient

// db += dout.sum(axis=0), into the given db (a layer's gradient, often a view of the flat buffer) or
// into a fresh zeroed one; returns db.
static py::object run_bias_grad(const std::string& op, bool naive, const py::object& dout_obj,
                                const py::object& db_obj) {
    const DeviceArray dout = device_array(op, "dout", dout_obj);
    check_ndim(op, "dout", dout, 2, "(N, C)");
    const int64_t N = dout.shape[0], C = dout.shape[1];
    py::object db = db_obj;
    float* db_ptr = nullptr;
    if (db_obj.is_none()) {
        std::tie(db, db_ptr) = new_array({C}, true);
    } else {
        const DeviceArray given = device_array(op, "db", db_obj);
        check_vector(op, "db", given, C);
        db_ptr = given.f32();
    }
    py::object partial;  // the fast kernel's scratch, one row per chunk of rows; none needed for one chunk
    float* partial_ptr = nullptr;
    const int64_t chunks = naive ? 0 : bias_grad_chunks(N);
    if (chunks > 1) { std::tie(partial, partial_ptr) = new_array({chunks, C}, false); }
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        if (naive) {
            bias_grad_naive_cuda(db_ptr, dout.f32(), N, C, stream);
        } else {
            bias_grad_cuda(db_ptr, partial_ptr, dout.f32(), N, C, stream);
        }
    }
    return db;
}

static py::object bias_grad_py(const py::object& dout, const py::object& db) {
    return run_bias_grad("bias_grad", false, dout, db);
}

static py::object bias_grad_naive_py(const py::object& dout, const py::object& db) {
    return run_bias_grad("bias_grad_naive", true, dout, db);
}

// ----------------------------------------------------------------------------- softmax

// softmax_forward and its teaching version share their checks; only the kernel differs.
static py::object run_softmax_forward(const std::string& op, decltype(&softmax_forward_cuda) kernel,
                                      const py::object& x_obj) {
    const DeviceArray x = device_array(op, "x", x_obj);
    auto [rows, N] = rows_and_width(op, "x", x);
    auto [y, y_ptr] = new_array(x.shape, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        kernel(y_ptr, x.f32(), rows, N, stream);
    }
    return y;
}
static py::object softmax_forward_py(const py::object& x) {
    return run_softmax_forward("softmax_forward", softmax_forward_cuda, x);
}
static py::object softmax_forward_naive_py(const py::object& x) {
    return run_softmax_forward("softmax_forward_naive", softmax_forward_naive_cuda, x);
}

static py::object softmax_backward_py(const py::object& dy_obj, const py::object& y_obj) {
    const std::string op = "softmax_backward";
    const DeviceArray dy = device_array(op, "dy", dy_obj), y = device_array(op, "y", y_obj);
    check_same_shape(op, "dy", dy, "y", y);
    auto [rows, N] = rows_and_width(op, "y", y);
    auto [dx, dx_ptr] = new_array(y.shape, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        softmax_backward_cuda(dx_ptr, dy.f32(), y.f32(), rows, N, stream);
    }
    return dx;
}

// ----------------------------------------------------------------------------- attention

// The flash kernels' shared-memory tiles are sized at compile time, up to kAttentionMaxHeadSize. An empty head
// would make the scale 1/sqrt(hs) infinite, and the kernels return before writing lse: refused, as on the CPU.
static void check_head_size(const std::string& op, int64_t hs) {
    if (hs < 1) {
        throw py::value_error(op + ": the head size hs (last axis of q) must be at least 1, got hs = " +
                              std::to_string(hs));
    }
    if (hs > kAttentionMaxHeadSize) {
        throw py::value_error(op + ": head size hs = " + std::to_string(hs) + " is larger than " +
                              std::to_string(kAttentionMaxHeadSize) + ", the largest the CUDA kernels take");
    }
}

// q, k, v (and dout, out): float32, C-contiguous, all (B, NH, T, hs) with hs within the kernels' reach.
static std::vector<DeviceArray> checked_heads(const std::string& op, const std::vector<std::string>& names,
                                              const std::vector<const py::object*>& objs) {
    std::vector<DeviceArray> arrays;
    for (size_t i = 0; i < objs.size(); i++) { arrays.push_back(device_array(op, names[i], *objs[i])); }
    check_ndim(op, names[0], arrays[0], 4, "(B, NH, T, hs)");
    for (size_t i = 1; i < arrays.size(); i++) { check_same_shape(op, names[i], arrays[i], names[0], arrays[0]); }
    check_head_size(op, arrays[0].shape[3]);
    return arrays;
}

using AttentionForward = void (*)(float*, float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                  int64_t, double, uint64_t, cudaStream_t);

static py::tuple run_attention_forward(const std::string& op, AttentionForward kernel, const py::object& q_obj,
                                       const py::object& k_obj, const py::object& v_obj, double dropout_p,
                                       uint64_t seed) {
    const auto arrays = checked_heads(op, {"q", "k", "v"}, {&q_obj, &k_obj, &v_obj});
    const DeviceArray &q = arrays[0], &k = arrays[1], &v = arrays[2];
    check_dropout_p(op, dropout_p);
    const int64_t B = q.shape[0], NH = q.shape[1], T = q.shape[2], hs = q.shape[3];
    auto [out, out_ptr] = new_array(q.shape, false);
    auto [lse, lse_ptr] = new_array({B, NH, T}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        kernel(out_ptr, lse_ptr, q.f32(), k.f32(), v.f32(), B, NH, T, hs, dropout_p, seed, stream);
    }
    return py::make_tuple(out, lse);
}

static py::tuple attention_backward_common(const std::string& op, bool naive, const py::object& dout_obj,
                                           const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                                           const py::object& out_obj, const py::object& lse_obj, double dropout_p,
                                           uint64_t seed) {
    const auto arrays =
        checked_heads(op, {"q", "dout", "k", "v", "out"}, {&q_obj, &dout_obj, &k_obj, &v_obj, &out_obj});
    const DeviceArray &q = arrays[0], &dout = arrays[1], &k = arrays[2], &v = arrays[3], &out = arrays[4];
    const DeviceArray lse = device_array(op, "lse", lse_obj);
    const int64_t B = q.shape[0], NH = q.shape[1], T = q.shape[2], hs = q.shape[3];
    if (lse.shape != std::vector<int64_t>{B, NH, T}) {
        throw py::value_error(op + ": lse must have shape (B, NH, T) = " + dims_str({B, NH, T}) + ", got " +
                              dims_str(lse.shape));
    }
    check_dropout_p(op, dropout_p);
    auto [dq, dq_ptr] = new_array(q.shape, true);
    auto [dk, dk_ptr] = new_array(q.shape, true);
    auto [dv, dv_ptr] = new_array(q.shape, true);
    py::object scratch;
    float* scratch_ptr = nullptr;
    if (!naive) { std::tie(scratch, scratch_ptr) = new_array({B, NH, T}, false); }
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        if (naive) {
            attention_backward_naive_cuda(dq_ptr, dk_ptr, dv_ptr, dout.f32(), q.f32(), k.f32(), v.f32(), out.f32(),
                                          lse.f32(), B, NH, T, hs, dropout_p, seed, stream);
        } else {
            attention_backward_cuda(dq_ptr, dk_ptr, dv_ptr, scratch_ptr, dout.f32(), q.f32(), k.f32(), v.f32(),
                                    out.f32(), lse.f32(), B, NH, T, hs, dropout_p, seed, stream);
        }
    }
    return py::make_tuple(dq, dk, dv);
}

// qkv: a float32 (B, T, 3C) CuPy array whose last axis splits into 3 * n_head heads of hs <= 128.
static DeviceArray checked_fused_qkv(const std::string& op, const py::object& qkv_obj, int64_t n_head) {
    const DeviceArray qkv = device_array(op, "qkv", qkv_obj);
    check_ndim(op, "qkv", qkv, 3, "(B, T, 3C)");
    if (n_head < 1 || qkv.shape[2] == 0 || qkv.shape[2] % (3 * n_head) != 0) {
        throw py::value_error(op + ": the last axis of qkv " + dims_str(qkv.shape) + " must be 3 * n_head * hs with " +
                              "hs >= 1, for n_head = " + std::to_string(n_head));
    }
    check_head_size(op, qkv.shape[2] / (3 * n_head));
    return qkv;
}

static py::tuple attention_forward_fused_py(const py::object& qkv_obj, int64_t n_head, double dropout_p,
                                            uint64_t seed) {
    const std::string op = "attention_forward_fused";
    const DeviceArray qkv = checked_fused_qkv(op, qkv_obj, n_head);
    check_dropout_p(op, dropout_p);
    const int64_t B = qkv.shape[0], T = qkv.shape[1], C = qkv.shape[2] / 3;
    auto [y, y_ptr] = new_array({B, T, C}, false);
    auto [lse, lse_ptr] = new_array({B, n_head, T}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        attention_forward_fused_cuda(y_ptr, lse_ptr, qkv.f32(), B, n_head, T, C / n_head, dropout_p, seed, stream);
    }
    return py::make_tuple(y, lse);
}

static py::object attention_backward_fused_py(const py::object& dy_obj, const py::object& qkv_obj,
                                              const py::object& y_obj, const py::object& lse_obj, int64_t n_head,
                                              double dropout_p, uint64_t seed) {
    const std::string op = "attention_backward_fused";
    const DeviceArray qkv = checked_fused_qkv(op, qkv_obj, n_head);
    const DeviceArray dy = device_array(op, "dy", dy_obj), y = device_array(op, "y", y_obj);
    const DeviceArray lse = device_array(op, "lse", lse_obj);
    const int64_t B = qkv.shape[0], T = qkv.shape[1], C = qkv.shape[2] / 3;
    if (y.shape != std::vector<int64_t>{B, T, C}) {
        throw py::value_error(op + ": y must have shape (B, T, C) = " + dims_str({B, T, C}) + " from qkv " +
                              dims_str(qkv.shape) + ", got " + dims_str(y.shape));
    }
    check_same_shape(op, "dy", dy, "y", y);
    if (lse.shape != std::vector<int64_t>{B, n_head, T}) {
        throw py::value_error(op + ": lse must have shape (B, n_head, T) = " + dims_str({B, n_head, T}) + ", got " +
                              dims_str(lse.shape));
    }
    check_dropout_p(op, dropout_p);
    auto [dqkv, dqkv_ptr] = new_array(qkv.shape, true);
    auto [scratch, scratch_ptr] = new_array({B, n_head, T}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        attention_backward_fused_cuda(dqkv_ptr, scratch_ptr, dy.f32(), qkv.f32(), y.f32(), lse.f32(), B, n_head, T,
                                      C / n_head, dropout_p, seed, stream);
    }
    return dqkv;
}

static py::tuple attention_forward_py(const py::object& q, const py::object& k, const py::object& v, double dropout_p,
                                      uint64_t seed) {
    return run_attention_forward("attention_forward", attention_forward_cuda, q, k, v, dropout_p, seed);
}

static py::tuple attention_forward_mma_py(const py::object& q, const py::object& k, const py::object& v,
                                          double dropout_p, uint64_t seed) {
    return run_attention_forward("attention_forward_mma", attention_forward_mma_cuda, q, k, v, dropout_p, seed);
}

static py::tuple attention_forward_naive_py(const py::object& q, const py::object& k, const py::object& v,
                                            double dropout_p, uint64_t seed) {
    return run_attention_forward("attention_forward_naive", attention_forward_naive_cuda, q, k, v, dropout_p, seed);
}

static py::tuple attention_backward_py(const py::object& dout, const py::object& q, const py::object& k,
                                       const py::object& v, const py::object& out, const py::object& lse,
                                       double dropout_p, uint64_t seed) {
    return attention_backward_common("attention_backward", false, dout, q, k, v, out, lse, dropout_p, seed);
}

static py::tuple attention_backward_naive_py(const py::object& dout, const py::object& q, const py::object& k,
                                             const py::object& v, const py::object& out, const py::object& lse,
                                             double dropout_p, uint64_t seed) {
    return attention_backward_common("attention_backward_naive", true, dout, q, k, v, out, lse, dropout_p, seed);
}

// ----------------------------------------------------------------------------- layernorm, gelu

static py::tuple run_layernorm_forward(const std::string& op, decltype(&layernorm_forward_cuda) kernel,
                                       const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                                       double eps) {
    const DeviceArray x = device_array(op, "x", x_obj), w = device_array(op, "w", w_obj);
    const DeviceArray b = device_array(op, "b", b_obj);
    auto [N, C] = rows_and_width(op, "x", x);
    check_vector(op, "w", w, C);
    check_vector(op, "b", b, C);
    const std::vector<int64_t> rows(x.shape.begin(), x.shape.end() - 1);
    auto [out, out_ptr] = new_array(x.shape, false);
    auto [mean, mean_ptr] = new_array(rows, false);
    auto [rstd, rstd_ptr] = new_array(rows, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        kernel(out_ptr, mean_ptr, rstd_ptr, x.f32(), w.f32(), b.f32(), N, C, static_cast<float>(eps), stream);
    }
    return py::make_tuple(out, mean, rstd);
}
static py::tuple layernorm_forward_py(const py::object& x, const py::object& w, const py::object& b, double eps) {
    return run_layernorm_forward("layernorm_forward", layernorm_forward_cuda, x, w, b, eps);
}
static py::tuple layernorm_forward_naive_py(const py::object& x, const py::object& w, const py::object& b,
                                            double eps) {
    return run_layernorm_forward("layernorm_forward_naive", layernorm_forward_naive_cuda, x, w, b, eps);
}

static py::tuple layernorm_backward_py(const py::object& dout_obj, const py::object& x_obj, const py::object& mean_obj,
                                       const py::object& rstd_obj, const py::object& w_obj) {
    const std::string op = "layernorm_backward";
    const DeviceArray dout = device_array(op, "dout", dout_obj), x = device_array(op, "x", x_obj);
    const DeviceArray mean = device_array(op, "mean", mean_obj), rstd = device_array(op, "rstd", rstd_obj);
    const DeviceArray w = device_array(op, "w", w_obj);
    auto [N, C] = rows_and_width(op, "x", x);
    check_same_shape(op, "dout", dout, "x", x);
    check_vector(op, "w", w, C);
    if (mean.size() != N || rstd.size() != N) {
        throw py::value_error(op + ": mean and rstd must hold one value per row of x " + dims_str(x.shape) + ", got " +
                              dims_str(mean.shape) + " and " + dims_str(rstd.shape));
    }
    auto [dx, dx_ptr] = new_array(x.shape, false);
    auto [dw, dw_ptr] = new_array({C}, true);
    auto [db, db_ptr] = new_array({C}, true);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        layernorm_backward_cuda(dx_ptr, dw_ptr, db_ptr, dout.f32(), x.f32(), mean.f32(), rstd.f32(), w.f32(), N, C,
                                stream);
    }
    return py::make_tuple(dx, dw, db);
}

static py::object gelu_forward_py(const py::object& x_obj) {
    const DeviceArray x = device_array("gelu_forward", "x", x_obj);
    auto [out, out_ptr] = new_array(x.shape, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        gelu_forward_cuda(out_ptr, x.f32(), x.size(), stream);
    }
    return out;
}

static py::object gelu_backward_py(const py::object& dout_obj, const py::object& x_obj) {
    const std::string op = "gelu_backward";
    const DeviceArray dout = device_array(op, "dout", dout_obj), x = device_array(op, "x", x_obj);
    check_same_shape(op, "dout", dout, "x", x);
    auto [dx, dx_ptr] = new_array(x.shape, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        gelu_backward_cuda(dx_ptr, dout.f32(), x.f32(), x.size(), stream);
    }
    return dx;
}

// ----------------------------------------------------------------------------- cross-entropy

// targets: an int64 CuPy array of shape (N,), each in [0, V) or negative (ignored). The range check
// reads one number back from the GPU (the largest target), which waits for the work queued so far; a
// caller that checked the targets on the host, before copying them in, passes check_range = false.
static DeviceArray checked_targets(const std::string& op, const py::object& targets_obj, int64_t N, int64_t V,
                                   bool check_range) {
    const DeviceArray t = device_array(op, "targets", targets_obj, "int64");
    if (!(t.ndim() == 1 && t.shape[0] == N)) {
        throw py::value_error(op + ": targets must be a contiguous " + dims_str({N}) +
                              " array, one per row of logits, got " + dims_str(t.shape));
    }
    if (check_range && N > 0) {
        const int64_t largest = targets_obj.attr("max")().attr("item")().cast<int64_t>();
        if (largest >= V) {
            throw py::value_error(op + ": target " + std::to_string(largest) + " is out of range for " +
                                  std::to_string(V) + " classes");
        }
    }
    return t;
}

static py::tuple run_cross_entropy_forward(const std::string& op, decltype(&cross_entropy_forward_cuda) kernel,
                                           const py::object& logits_obj, const py::object& targets_obj,
                                           bool check_range) {
    const DeviceArray logits = device_array(op, "logits", logits_obj);
    check_ndim(op, "logits", logits, 2, "(N, V)");
    const int64_t N = logits.shape[0], V = logits.shape[1];
    const DeviceArray t = checked_targets(op, targets_obj, N, V, check_range);
    auto [losses, losses_ptr] = new_array({N}, false);
    auto [lse, lse_ptr] = new_array({N}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        kernel(losses_ptr, lse_ptr, logits.f32(), t.i64(), N, V, stream);
    }
    return py::make_tuple(losses, lse);
}
static py::tuple cross_entropy_forward_py(const py::object& logits, const py::object& targets, bool check_range) {
    return run_cross_entropy_forward("cross_entropy_forward", cross_entropy_forward_cuda, logits, targets,
                                     check_range);
}
static py::tuple cross_entropy_forward_naive_py(const py::object& logits, const py::object& targets,
                                                bool check_range) {
    return run_cross_entropy_forward("cross_entropy_forward_naive", cross_entropy_forward_naive_cuda, logits, targets,
                                     check_range);
}

static py::object cross_entropy_backward_py(const py::object& logits_obj, const py::object& lse_obj,
                                            const py::object& targets_obj, double dloss, bool check_range) {
    const std::string op = "cross_entropy_backward";
    const DeviceArray logits = device_array(op, "logits", logits_obj), lse = device_array(op, "lse", lse_obj);
    check_ndim(op, "logits", logits, 2, "(N, V)");
    const int64_t N = logits.shape[0], V = logits.shape[1];
    check_vector(op, "lse", lse, N);
    const DeviceArray t = checked_targets(op, targets_obj, N, V, check_range);
    auto [dlogits, dlogits_ptr] = new_array({N, V}, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        cross_entropy_backward_cuda(dlogits_ptr, logits.f32(), lse.f32(), t.i64(), static_cast<float>(dloss), N, V,
                                    stream);
    }
    return dlogits;
}

// ----------------------------------------------------------------------------- adamw

static void adamw_update_py(const py::object& p_obj, const py::object& m_obj, const py::object& v_obj,
                            const py::object& g_obj, double lr, double beta1, double beta2, double eps,
                            double weight_decay, double bias1, double bias2) {
    const std::string op = "adamw_update";
    const DeviceArray g = device_array(op, "g", g_obj);
    const DeviceArray p = device_array(op, "p", p_obj), m = device_array(op, "m", m_obj);
    const DeviceArray v = device_array(op, "v", v_obj);
    check_same_shape(op, "p", p, "g", g);
    check_same_shape(op, "m", m, "g", g);
    check_same_shape(op, "v", v, "g", g);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        adamw_update_cuda(p.f32(), m.f32(), v.f32(), g.f32(), g.size(), static_cast<float>(lr),
                          static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(eps),
                          static_cast<float>(weight_decay), static_cast<float>(bias1), static_cast<float>(bias2),
                          stream);
    }
}

// ----------------------------------------------------------------------------- embedding

// ids: an int64 CuPy array, each in [0, V). The range check reads two numbers back from the GPU, which
// waits for the work queued so far; a caller that checked the ids on the host passes check_range = false.
static DeviceArray checked_ids(const std::string& op, const py::object& idx_obj, int64_t V, bool check_range) {
    const DeviceArray idx = device_array(op, "idx", idx_obj, "int64");
    if (check_range && idx.size() > 0) {
        const int64_t lo = idx_obj.attr("min")().attr("item")().cast<int64_t>();
        const int64_t hi = idx_obj.attr("max")().attr("item")().cast<int64_t>();
        if (lo < 0 || hi >= V) {
            throw py::value_error(op + ": index " + std::to_string(lo < 0 ? lo : hi) + " out of range for a table of " +
                                  std::to_string(V) + " rows");
        }
    }
    return idx;
}

static py::object embedding_forward_py(const py::object& idx_obj, const py::object& w_obj, bool check_range) {
    const std::string op = "embedding_forward";
    const DeviceArray w = device_array(op, "w", w_obj);
    check_ndim(op, "w", w, 2, "(V, C)");
    const int64_t V = w.shape[0], C = w.shape[1];
    const DeviceArray idx = checked_ids(op, idx_obj, V, check_range);
    std::vector<int64_t> shape = idx.shape;
    shape.push_back(C);
    auto [out, out_ptr] = new_array(shape, false);
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        embedding_forward_cuda(out_ptr, idx.i64(), w.f32(), idx.size(), V, C, stream);
    }
    return out;
}

static void embedding_backward_py(const py::object& dw_obj, const py::object& dout_obj, const py::object& idx_obj,
                                  bool check_range) {
    const std::string op = "embedding_backward";
    const DeviceArray dw = device_array(op, "dw", dw_obj), dout = device_array(op, "dout", dout_obj);
    check_ndim(op, "dw", dw, 2, "(V, C)");
    const int64_t V = dw.shape[0], C = dw.shape[1];
    const DeviceArray idx = checked_ids(op, idx_obj, V, check_range);
    std::vector<int64_t> expected = idx.shape;
    expected.push_back(C);
    if (dout.shape != expected) {
        throw py::value_error(op + ": dout must have shape idx.shape + (C,) = " + dims_str(expected) + ", got " +
                              dims_str(dout.shape));
    }
    const cudaStream_t stream = current_stream();
    {
        py::gil_scoped_release release;
        embedding_backward_cuda(dw.f32(), dout.f32(), idx.i64(), idx.size(), V, C, stream);
    }
}

// ----------------------------------------------------------------------------- info

static py::dict info() {
    int device = 0, runtime = 0, driver = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        throw std::runtime_error("minigpt._cuda: no usable CUDA device (" +
                                 std::string(cudaGetErrorString(cudaGetLastError())) + ")");
    }
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    py::dict d;
    d["device"] = std::string(prop.name);
    d["compute_capability"] = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    d["multiprocessors"] = prop.multiProcessorCount;
    d["memory_gib"] = static_cast<double>(prop.totalGlobalMem) / (1 << 30);
    d["cuda_runtime"] = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
    d["cuda_driver"] = std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10);
    d["built_for"] = MINIGPT_CUDA_ARCHITECTURES;  // CMAKE_CUDA_ARCHITECTURES at build time
    d["float32_kernel"] = std::string(matmul_float32_kernel_cuda());
    d["tf32_kernel"] = std::string(matmul_tf32_kernel_cuda());
    d["wgmma"] = matmul_wgmma_available_cuda();
    return d;
}

// ----------------------------------------------------------------------------- module

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "CUDA kernels of minigpt (float32, C-contiguous CuPy arrays); call them through minigpt.kernels "
              "with backend='cuda'";

    const auto matmul_doc = "out = op(a) @ op(b) (+ bias), op(x) = x.T when asked. a: (M, K) or (K, M) with trans_a; "
                            "b: (K, N) or (N, K) with trans_b; bias: (N,) or None. Returns out: (M, N).";
    m.def("matmul", &matmul, matmul_doc, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("bias") = py::none());
    m.def("set_tf32", [](bool on) { set_matmul_tf32_cuda(on); }, "Let matmul use TF32 tensor cores (faster, a "
          "relative error near 1e-3) or not (the default: float32-exact). Needs compute capability 8.0 or newer.",
          py::arg("on"));
    m.def("tf32", &matmul_tf32_cuda, "Whether matmul uses TF32 tensor cores (see set_tf32).");
    m.def("matmul_staged", &matmul_staged, "matmul with the tuned tiles double-buffered through registers instead "
          "of cp.async (what matmul runs before Ampere): same arguments and result; float32 even with TF32 on.",
          py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          py::arg("bias") = py::none());
    m.def("matmul_tf32_mma", &matmul_tf32_mma, "matmul on the TF32 tensor cores by mma.sync (the TF32 kernel "
          "of Ampere and Ada; Hopper's is wgmma, see info()['tf32_kernel']), whatever set_tf32 says: same "
          "arguments and result, to TF32 precision.", py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("bias") = py::none());
    m.def("matmul_tf32_wgmma_overlapped", &matmul_tf32_wgmma_overlapped, "matmul on Hopper's wgmma with four "
          "stages and one group of products kept in flight (one block an SM), beside the three-stage kernel matmul "
          "runs with TF32 on, for timing both; whatever set_tf32 says. Needs compute capability 9.0 and a build "
          "for sm_90a.", py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          py::arg("bias") = py::none());
    m.def("matmul_tiled", &matmul_tiled, "matmul with 16 x 16 shared-memory tiles (teaching version): same "
          "arguments and result.", py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          py::arg("bias") = py::none());
    m.def("matmul_naive", &matmul_naive, "matmul with one thread per output (teaching version): same arguments and "
          "result.", py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          py::arg("bias") = py::none());

    m.def("bias_grad", &bias_grad_py, "db += dout.sum(axis=0), the gradient of a bias added to every row. dout: "
          "(N, C); db: (C,), added into in place, or None for a new one. Returns db.", py::arg("dout"),
          py::arg("db") = py::none());
    m.def("bias_grad_naive", &bias_grad_naive_py, "bias_grad with one thread per column (teaching version): same "
          "arguments and result.", py::arg("dout"), py::arg("db") = py::none());

    m.def("softmax_forward", &softmax_forward_py, "y = softmax(x) over the last axis. x: (..., N) -> y: (..., N).",
          py::arg("x"));
    m.def("softmax_forward_naive", &softmax_forward_naive_py, "softmax_forward with one thread per row (teaching "
          "version): same arguments and result.", py::arg("x"));
    m.def("softmax_backward", &softmax_backward_py, "dx = y * (dy - sum(dy * y)) over the last axis.", py::arg("dy"),
          py::arg("y"));

    m.def("attention_forward", &attention_forward_py, "Causal flash attention with attention dropout. q, k, v: "
          "(B, NH, T, hs), hs <= 128; dropout_p in [0, 1); seed picks the dropout mask. Returns (out (B, NH, T, hs), "
          "lse (B, NH, T)).", py::arg("q"), py::arg("k"), py::arg("v"), py::arg("dropout_p") = 0.0,
          py::arg("seed") = 0);
    m.def("attention_backward", &attention_backward_py, "Gradients of attention_forward. dout, q, k, v, out: "
          "(B, NH, T, hs); lse: (B, NH, T). Returns (dq, dk, dv).", py::arg("dout"), py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_forward_fused", &attention_forward_fused_py, "attention_forward on the heads inside a fused "
          "projection, read in place. qkv: (B, T, 3C), q, k, v side by side; C = n_head * hs. Returns (y (B, T, C) "
          "with the heads side by side, lse (B, n_head, T)).",
          py::arg("qkv"), py::arg("n_head"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_backward_fused", &attention_backward_fused_py, "Gradients of attention_forward_fused. dy, y: "
          "(B, T, C); qkv: (B, T, 3C); lse: (B, n_head, T). Returns dqkv (B, T, 3C).",
          py::arg("dy"), py::arg("qkv"), py::arg("y"), py::arg("lse"), py::arg("n_head"), py::arg("dropout_p") = 0.0,
          py::arg("seed") = 0);
    m.def("attention_forward_mma", &attention_forward_mma_py, "attention_forward on the tensor cores, float32-"
          "accurate (3xTF32), compute capability 8.0 or newer: same arguments and results.", py::arg("q"),
          py::arg("k"), py::arg("v"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_forward_naive", &attention_forward_naive_py, "attention_forward with one thread per query row "
          "(teaching version): same arguments and results.", py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("dropout_p") = 0.0, py::arg("seed") = 0);
    m.def("attention_backward_naive", &attention_backward_naive_py, "attention_backward with one thread per query "
          "row (teaching version): same arguments and results.", py::arg("dout"), py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0);

    m.def("layernorm_forward", &layernorm_forward_py, "LayerNorm over the last axis. x: (..., C), w, b: (C,). "
          "Returns (out (..., C), mean (...), rstd (...)).", py::arg("x"), py::arg("w"), py::arg("b"),
          py::arg("eps") = 1e-5);
    m.def("layernorm_forward_naive", &layernorm_forward_naive_py, "layernorm_forward with one thread per row "
          "(teaching version): same arguments and results.", py::arg("x"), py::arg("w"), py::arg("b"),
          py::arg("eps") = 1e-5);
    m.def("layernorm_backward", &layernorm_backward_py, "Gradients of layernorm_forward from the saved mean and rstd. "
          "Returns (dx, dw, db).", py::arg("dout"), py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("w"));
    m.def("gelu_forward", &gelu_forward_py, "GELU (tanh form), elementwise.", py::arg("x"));
    m.def("gelu_backward", &gelu_backward_py, "dx = dout * gelu'(x).", py::arg("dout"), py::arg("x"));
    m.def("cross_entropy_forward", &cross_entropy_forward_py, "Per-row softmax cross-entropy. logits: (N, V) float32, "
          "targets: (N,) int64 (negative = ignored). Returns (losses (N,), lse (N,)). check_range=False skips the "
          "check that targets < V, which reads a number back from the GPU (for targets checked on the host).",
          py::arg("logits"), py::arg("targets"), py::arg("check_range") = true);
    m.def("cross_entropy_forward_naive", &cross_entropy_forward_naive_py, "cross_entropy_forward with one thread per "
          "row (teaching version): same arguments and results.", py::arg("logits"), py::arg("targets"),
          py::arg("check_range") = true);
    m.def("cross_entropy_backward", &cross_entropy_backward_py, "dlogits = dloss * (softmax - onehot) on counted rows. "
          "Returns dlogits (N, V).", py::arg("logits"), py::arg("lse"), py::arg("targets"), py::arg("dloss"),
          py::arg("check_range") = true);
    m.def("adamw_update", &adamw_update_py, "One AdamW step of one parameter, in place (p, m, v).", py::arg("p"),
          py::arg("m"), py::arg("v"), py::arg("g"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
          py::arg("weight_decay"), py::arg("bias1"), py::arg("bias2"));
    m.def("embedding_forward", &embedding_forward_py, "Rows of w picked by ids. idx: int64 (...), w: (V, C) -> "
          "out: (..., C). check_range=False skips the check that 0 <= ids < V, which reads two numbers back from "
          "the GPU (for ids checked on the host).", py::arg("idx"), py::arg("w"), py::arg("check_range") = true);
    m.def("embedding_backward", &embedding_backward_py, "dw[idx] += dout in place, repeated ids accumulating. "
          "dw: (V, C), dout: idx.shape + (C,).", py::arg("dw"), py::arg("dout"), py::arg("idx"),
          py::arg("check_range") = true);

    m.def("info", &info, "The GPU and build: {'device', 'compute_capability', 'multiprocessors', 'memory_gib', "
          "'cuda_runtime', 'cuda_driver', 'built_for', 'float32_kernel', 'tf32_kernel', 'wgmma' (whether wgmma can run here)}.");
}
