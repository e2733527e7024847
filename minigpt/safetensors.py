"""Reading and writing the safetensors format, in plain Python (no pickle, so loading runs no code).

The format (https://github.com/huggingface/safetensors):
    8 bytes   little-endian u64 N, the size of the header
    N bytes   a JSON object {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
              "__metadata__": {str: str}}, padded with spaces to a multiple of 8
    the rest  the tensors' bytes, little-endian, C order; offsets count from the start of this part
Files written here load in the `safetensors` package and in Hugging Face transformers.
"""
import json
import math
import struct

import numpy as np

from minigpt.data import atomic_write_bytes

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
          "BOOL": np.bool_}
CODES = {np.dtype(t): code for code, t in DTYPES.items()}
# Bytes per element of every dtype the format defines, for checking offsets; a reader may support fewer
# (DTYPES here, the float ones in pretrained/hf_weights.py) and says so itself.
ITEMSIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
             "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit; guards against garbage
MAX_DIMS = 32
METADATA = "__metadata__"


def save_file(tensors, path, metadata=None):
    """Write {name: ndarray} to path atomically. metadata: {str: str} stored in the header."""
    header, offset = {}, 0
    arrays = []
    if METADATA in tensors:  # a reader would take that entry for the metadata, and refuse the file
        raise ValueError(f"safetensors: {METADATA!r} is the format's name for the metadata, not a tensor's")
    for name, array in tensors.items():
        array = np.asarray(array, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
        # the format is little-endian; converted first, as CODES holds the native (little-endian) dtypes only
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        if array.dtype not in CODES:
            raise TypeError(f"safetensors: tensor {name!r} has unsupported dtype {array.dtype}")
        header[name] = {"dtype": CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    if metadata:
        header[METADATA] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    atomic_write_bytes(path, b"".join([struct.pack("<Q", len(encoded)), encoded] + [a.tobytes() for a in arrays]))


def read_header(f, path):
    """Parse and validate the header of an open file; return (header dict, offset of the data).

    Every entry is checked here (see check_entry), so readers can index entry["shape"] and
    entry["data_offsets"] without a KeyError or a TypeError; which dtypes they accept is theirs to say."""
    size_bytes = f.read(8)
    if len(size_bytes) != 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", size_bytes)
    if n > MAX_HEADER:
        raise ValueError(f"{path}: header size {n} is implausible; not a safetensors file, or corrupted")
    if 8 + n > file_size(f):
        raise ValueError(f"{path}: the header is {n} bytes, but the file holds {file_size(f) - 8} after its size; "
                         "the file is truncated or not a safetensors file")
    # ValueError: not JSON, or an integer of more digits than Python converts (4,300); RecursionError: arrays
    # nested deeper than Python's parser goes. Neither is a header.
    try:
        header = json.loads(f.read(n))
    except (ValueError, RecursionError):
        raise ValueError(f"{path}: the header is not valid JSON; the file is corrupted") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a valid safetensors file: the header is a JSON {json_type(header)}, "
                         "not an object; the file is corrupted")
    data_size = file_size(f) - (8 + n)
    for name, entry in header.items():
        if name == METADATA:
            check_metadata(entry, path)
        else:
            check_entry(name, entry, data_size, path)
    check_layout(header, data_size, path)
    return header, 8 + n


def file_size(f):
    """The size of an open file, leaving its position where it was."""
    here = f.tell()
    size = f.seek(0, 2)
    f.seek(here)
    return size


def json_type(value):
    """The JSON name of a parsed value's type, for messages ("object", not "dict")."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def is_int_list(value):
    return isinstance(value, list) and all(type(v) is int for v in value)  # (bool is not an int here)


def check_entry(name, entry, data_size, path):
    """One tensor's entry: {"dtype": str, "shape": [ints >= 0], "data_offsets": [begin, end]}, with
    0 <= begin <= end <= the data's size, and end - begin the bytes the shape needs (for known dtypes)."""
    def invalid(what, cause="the file is corrupted"):
        return ValueError(f"{path} is not a valid safetensors file: tensor {name!r}: {what}; {cause}")

    if not isinstance(entry, dict):
        raise invalid(f"its entry is a JSON {json_type(entry)}, not an object")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in entry:
            raise invalid(f"its entry has no {key!r}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str):
        raise invalid(f"'dtype' must be a string, got {dtype!r}")
    # at most 32 dimensions, each below 2^62: NumPy refuses more than 64, or one that overflows its sizes, with
    # a message that names neither the file nor the tensor (a zero elsewhere in the shape makes such one fit 0 bytes)
    if not is_int_list(shape) or len(shape) > MAX_DIMS or any(not 0 <= d < 2**62 for d in shape):
        raise invalid(f"'shape' must be a list of at most {MAX_DIMS} integers in [0, 2^62), got {shape!r:.200}")
    if not is_int_list(offsets) or len(offsets) != 2:
        raise invalid(f"'data_offsets' must be two integers [begin, end], got {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise invalid(f"data_offsets {begin}..{end} do not satisfy 0 <= begin <= end")
    if end > data_size:
        raise invalid(f"data_offsets {begin}..{end} go past the end of the data ({data_size} bytes)",
                      "the file is corrupted or truncated")
    itemsize = ITEMSIZES.get(dtype)
    if itemsize is None:
        return  # a dtype the format added later: the reader refuses it by name, which says more
    needed = math.prod(shape) * itemsize  # (Python ints: a huge shape cannot overflow into a match)
    if end - begin != needed:
        raise invalid(f"data_offsets {begin}..{end} hold {end - begin} bytes, but shape {shape} of {dtype} "
                      f"needs {needed}")


def check_layout(header, data_size, path):
    """The tensors tile the data exactly: in order of their offsets, each begins where the one before
    ends, the first at 0 and the last at the data's end. Hugging Face's reader refuses any other file, so
    a gap, an overlap (two names on the same bytes) or bytes after the last tensor mean the file is not
    what its writer wrote; refusing here keeps the two readers in agreement."""
    spans = sorted((entry["data_offsets"][0], entry["data_offsets"][1], name)
                   for name, entry in header.items() if name != METADATA)
    expected, before = 0, None
    for begin, end, name in spans:
        if begin != expected:
            what = (f"overlaps tensor {before!r}, which ends at {expected}" if begin < expected
                    else f"leaves bytes {expected}..{begin} unused")
            raise ValueError(f"{path} is not a valid safetensors file: tensor {name!r} at data_offsets "
                             f"{begin}..{end} {what}; the file is corrupted")
        expected, before = end, name
    if expected != data_size:
        where = "after the last tensor's data" if spans else "but the header lists no tensor"
        raise ValueError(f"{path} is not a valid safetensors file: {data_size - expected} bytes of data {where}; "
                         "the file is corrupted")


def check_metadata(metadata, path):
    """The optional "__metadata__" entry: an object of strings (or null), as the format defines it."""
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path} is not a valid safetensors file: {METADATA!r} must be an object of strings, "
                         f"got {metadata!r:.200}; the file is corrupted")


def load_file(path):
    """{name: ndarray} from a safetensors file (the metadata is returned by load_metadata)."""
    with open(path, "rb") as f:
        header, start = read_header(f, path)  # checks shapes and offsets against the file
        tensors = {}
        for name, entry in header.items():
            if name == METADATA:
                continue
            if entry["dtype"] not in DTYPES:
                raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {entry['dtype']!r}")
            dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
            count = math.prod(entry["shape"])
            f.seek(start + entry["data_offsets"][0])
            array = np.fromfile(f, dtype=dtype, count=count)
            if array.size != count:  # the file shrank after read_header measured it
                raise ValueError(f"{path}: tensor {name!r} ends early; the file is truncated")
            tensors[name] = array.reshape(tuple(entry["shape"])).astype(dtype.newbyteorder("="), copy=False)
    return tensors


def load_metadata(path):
    with open(path, "rb") as f:
        return read_header(f, path)[0].get(METADATA) or {}
