"""Reading and writing the safetensors format, in plain Python (no pickle, so loading runs no code).

The format (https://github.com/huggingface/safetensors):
    8 bytes   little-endian u64 N, the size of the header
    N bytes   a JSON object {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
              "__metadata__": {str: str}}, padded with spaces to a multiple of 8
    the rest  the tensors' bytes, little-endian, C order; offsets count from the start of this part
Files written here load in the `safetensors` package and in Hugging Face transformers.
"""
import json
import struct

import numpy as np

from minigpt.data import atomic_write_bytes

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
          "BOOL": np.bool_}
CODES = {np.dtype(t): code for code, t in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit; guards against garbage


def save_file(tensors, path, metadata=None):
    """Write {name: ndarray} to path atomically. metadata: {str: str} stored in the header."""
    header, offset = {}, 0
    arrays = []
    for name, array in tensors.items():
        array = np.asarray(array, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
        if array.dtype not in CODES:
            raise TypeError(f"safetensors: tensor {name!r} has unsupported dtype {array.dtype}")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    atomic_write_bytes(path, b"".join([struct.pack("<Q", len(encoded)), encoded] + [a.tobytes() for a in arrays]))


def read_header(f, path):
    """Parse and validate the header of an open file; return (header dict, offset of the data)."""
    size_bytes = f.read(8)
    if len(size_bytes) != 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", size_bytes)
    if n > MAX_HEADER:
        raise ValueError(f"{path}: header size {n} is implausible; not a safetensors file, or corrupted")
    try:
        header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path}: the header is not valid JSON; the file is corrupted") from None
    return header, 8 + n


def load_file(path):
    """{name: ndarray} from a safetensors file (the metadata is returned by load_metadata)."""
    with open(path, "rb") as f:
        header, start = read_header(f, path)
        f.seek(0, 2)
        data_size = f.tell() - start
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry.get("dtype") not in DTYPES:
                raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {entry.get('dtype')!r}")
            dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
            begin, end = entry["data_offsets"]
            count = int(np.prod(entry["shape"], dtype=np.int64))
            if not 0 <= begin <= end <= data_size or end - begin != count * dtype.itemsize:
                raise ValueError(f"{path}: tensor {name!r} has offsets {begin}..{end} that do not fit its shape "
                                 f"{entry['shape']} or the file ({data_size} data bytes); the file is corrupted")
            f.seek(start + begin)
            array = np.fromfile(f, dtype=dtype, count=count).reshape(tuple(entry["shape"]))
            tensors[name] = array.astype(dtype.newbyteorder("="), copy=False)
    return tensors


def load_metadata(path):
    with open(path, "rb") as f:
        return read_header(f, path)[0].get("__metadata__", {})
