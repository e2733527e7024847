"""A stand-in for CuPy on NumPy, for running backend="cuda" on the CUDA emulator (tests/cuda_emulator).

"Device" arrays are host memory: `cupy.ndarray` is a NumPy subclass whose `data.ptr` is the address
the emulated kernels read and write. It keeps the rules of the real CuPy that the layer code must
follow, so that a mistake that would fail on a GPU fails here too:
  - an operation mixing a device array with a NumPy array (other than a scalar) raises TypeError;
  - arrays move between host and device only through cupy.asarray (a copy) and .get()/asnumpy;
  - cupy.empty returns NaN-filled memory, so a kernel that leaves an output unwritten is noticed.
Only what minigpt, its tests and tutorials use is here; anything else is taken from NumPy and its
array results wrapped as device arrays.
"""
import time
import types

import numpy as _np

__version__ = "emulated (NumPy " + _np.__version__ + ")"


host_reads = 0  # device-to-host reads so far (see ndarray)


def _count_host_read():
    global host_reads
    host_reads += 1


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


class _Device:
    def __init__(self, device_id=0):
        self.id = device_id

    def synchronize(self):
        pass


def _unwrap(x, check_mixing=False):
    """Device arrays as plain NumPy views, recursively through lists, tuples and dicts."""
    if isinstance(x, ndarray):
        return x.view(_np.ndarray)
    if check_mixing and type(x) is _np.ndarray and x.ndim > 0:
        raise TypeError("Unsupported type <class 'numpy.ndarray'>: the real CuPy does not mix host arrays into "
                        "device operations (move it with cupy.asarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, check_mixing) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, check_mixing) for k, v in x.items()}
    return x


def _wrap(x):
    """NumPy arrays as device arrays, recursively through tuples and lists. A NumPy scalar becomes a 0-d
    device array: CuPy's reductions and element reads stay on the device until the host asks."""
    if type(x) is _np.ndarray:
        return x.view(ndarray)
    if isinstance(x, _np.generic):
        return _np.asarray(x).view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class ndarray(_np.ndarray):
    """A device array: NumPy memory the emulated kernels see through data.ptr.

    Every read of a value by the host (bool(), float(), int(), format(), an index, .item(), .tolist(),
    .get()) is counted in host_reads: on a GPU each one waits for all the work queued before it. (One
    read is neither counted nor refused: np.asarray(device array), which real CuPy refuses.)
    """

    @property
    def data(self):
        return _Pointer(self.__array_interface__["data"][0])

    @property
    def device(self):
        return _Device(0)

    def get(self, stream=None, order="C", out=None):
        _count_host_read()
        return _np.array(self.view(_np.ndarray), order=order, copy=True)

    def dot(self, b, out=None):
        return _wrap(_np.dot(self.view(_np.ndarray), _unwrap(b, check_mixing=True)))

    def __getitem__(self, key):
        return _wrap(super().__getitem__(_unwrap(key)))

    def _host_value(self):
        _count_host_read()
        return self.view(_np.ndarray)

    def __bool__(self):
        return bool(self._host_value())

    def __float__(self):
        return float(self._host_value())

    def __int__(self):
        return int(self._host_value())

    def __index__(self):
        return self._host_value().__index__()

    def __format__(self, spec):  # CuPy formats the value it copies back
        return format(self._host_value(), spec)

    def item(self, *args):
        return self._host_value().item(*args)

    def tolist(self):
        return self._host_value().tolist()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = _unwrap(inputs, check_mixing=True)
        kwargs = _unwrap(kwargs, check_mixing=True)
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args, check_mixing=True), **_unwrap(kwargs, check_mixing=True)))

    def __repr__(self):
        return "device " + repr(self.view(_np.ndarray))


def asarray(x, dtype=None, order=None):
    """Host data to the device (a copy), or a device array as it is (a copy if dtype or order="C" ask)."""
    if isinstance(x, ndarray):
        if (dtype is None or x.dtype == _np.dtype(dtype)) and (order != "C" or x.flags.c_contiguous):
            return x
        return _np.array(x.view(_np.ndarray), dtype=dtype, order=order or "K").view(ndarray)
    return _np.array(x, dtype=dtype, order=order or "K", copy=True).view(ndarray)



def asnumpy(x, stream=None, order="C"):
    return x.get(order=order) if isinstance(x, ndarray) else _np.asarray(x, order=order)


def empty(shape, dtype=float, order="C"):
    x = _np.empty(shape, dtype=dtype, order=order)
    if x.dtype.kind == "f":
        x.fill(_np.nan)  # the GPU's fresh memory holds whatever was there: make an unwritten value visible
    return x.view(ndarray)


def _wrapped(func):
    def call(*args, **kwargs):
        return _wrap(func(*_unwrap(args, check_mixing=True), **_unwrap(kwargs, check_mixing=True)))
    call.__name__ = getattr(func, "__name__", "function")
    call.__doc__ = func.__doc__
    return call


def _module_proxy(module):
    proxy = types.ModuleType("cupy." + module.__name__.split(".")[-1])

    def __getattr__(name):
        value = getattr(module, name)
        return _wrapped(value) if callable(value) and not isinstance(value, type) else value
    proxy.__getattr__ = __getattr__
    return proxy


linalg = _module_proxy(_np.linalg)


def __getattr__(name):
    """Everything else from NumPy: functions wrapped to return device arrays; types, dtypes and ufuncs as they are."""
    value = getattr(_np, name)
    if isinstance(value, _np.ufunc) or isinstance(value, type) or not callable(value):
        return value
    return _wrapped(value)


class _MemoryPool:
    def free_all_blocks(self):
        pass


def get_default_memory_pool():
    return _MemoryPool()


class _Stream:
    ptr = 0  # the emulator runs every launch at once, in order: one stream


class _Event:
    """Host time: the emulator runs each launch to completion before the call returns."""

    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _Runtime:
    @staticmethod
    def getDevice():
        return 0


cuda = types.ModuleType("cupy.cuda")
cuda.is_available = lambda: True
cuda.runtime = _Runtime()
cuda.get_current_stream = lambda: _Stream()
cuda.Device = _Device
cuda.Event = _Event
cuda.get_elapsed_time = lambda start, stop: (stop.t - start.t) * 1000.0
