"""Reading a Hugging Face model's safetensors files straight into a model's parameters, a tensor at a time.

Memory is the point. GPT-2 124M is 498 MB of float32. Reading the whole file into a dict first
(minigpt.safetensors.load_file) and then copying into the model holds two full copies at the peak;
here each tensor goes from the file straight into the parameter the model has already allocated
(file.readinto, no intermediate array) when the dtypes agree, and otherwise through one temporary
the size of that tensor (float16 and bfloat16 files, float64 models). The peak is the model plus
its largest tensor. The header is parsed and validated by minigpt.safetensors.read_header, and no
file format that can run code (pickle: pytorch_model.bin) is read at all.
"""
import json
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from minigpt import kernels
from minigpt.safetensors import METADATA, read_header

# The float dtypes a checkpoint may hold; bfloat16 is read as its 16 raw bits and widened below.
FILE_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def pickle_only_message(folder):
    return (f"{folder} holds pytorch_model.bin but no model.safetensors. minigpt does not read pickle files "
            "(loading one can run arbitrary code). Convert it once where transformers and torch are installed:\n"
            "    python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{folder}').save_pretrained('{folder}')\"\n"
            "which writes model.safetensors beside it (transformers 5 writes safetensors by default; "
            "older versions need save_pretrained(..., safe_serialization=True)).")


def weight_files(folder):
    """The safetensors files of a HF model folder: model.safetensors, or the shards its index lists."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return shard_files(folder, index)
    if (folder / "pytorch_model.bin").is_file() or (folder / "pytorch_model.bin.index.json").is_file():
        raise FileNotFoundError(pickle_only_message(folder))
    raise FileNotFoundError(f"{folder}: no model.safetensors (or model.safetensors.index.json) in this folder")


def shard_files(folder, index):
    """The shards model.safetensors.index.json lists: its "weight_map" is {tensor name: shard file name}."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError too
        raise ValueError(f"{index}: not a valid safetensors index (not valid JSON: {e})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or \
            not all(isinstance(shard, str) for shard in weight_map.values()):
        raise ValueError(f"{index}: not a valid safetensors index: it needs a non-empty \"weight_map\" object of "
                         f"tensor name -> shard file name, got {weight_map!r:.200}")
    return [shard_path(folder, index, shard) for shard in sorted(set(weight_map.values()))]


def shard_path(folder, index, shard):
    """folder / shard, refusing a name that leads out of the folder: an index that came with a downloaded
    model must not make minigpt read other files ("../other/model.safetensors", "/home/...").
    The test is on the name, not the resolved path: in a Hugging Face cache the files are symlinks
    into ../../blobs/, and those are fine."""
    name = PurePosixPath(shard.replace("\\", "/"))  # a Windows-style name is checked the same way
    if not shard or name.is_absolute() or PureWindowsPath(shard).drive or ".." in name.parts:
        raise ValueError(f"{index}: shard {shard!r} is not a file name inside {folder}; an index may only name "
                         "files in its own folder")
    path = folder / shard
    if not path.is_file():
        raise FileNotFoundError(f"{index} lists the shard {shard!r}, but {path} is not a file")
    return path


def read_entries(files):
    """{tensor name: (path, header entry, start of the data)} over all files. read_header has checked
    each entry's shape and offsets against its file; plan_reads checks the dtypes of those it reads."""
    entries = {}
    for path in files:
        with open(path, "rb") as f:
            header, start = read_header(f, path)
        for name, entry in header.items():
            if name == METADATA:
                continue
            if name in entries:
                raise ValueError(f"tensor {name!r} is in both {entries[name][0]} and {path}")
            entries[name] = (path, entry, start)
    return entries


def read_tensor(f, path, name, entry, start, out):
    """Read one tensor into the array `out` (the right shape), converting its dtype if needed."""
    file_dtype = np.dtype(FILE_DTYPES[entry["dtype"]]).newbyteorder("<")
    f.seek(start + entry["data_offsets"][0])
    direct = (isinstance(out, np.ndarray) and out.flags.c_contiguous and sys.byteorder == "little"
              and entry["dtype"] != "BF16" and out.dtype == file_dtype)
    if direct:  # the common case: a float32 file into a float32 model, no temporary at all
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise ValueError(f"{path}: tensor {name!r} ends early; the file is truncated")
        return
    raw = np.fromfile(f, dtype=file_dtype, count=out.size)
    if raw.size != out.size:
        raise ValueError(f"{path}: tensor {name!r} ends early; the file is truncated")
    if entry["dtype"] == "BF16":  # bfloat16 is the top half of a float32: shift the bits back up
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    out[...] = kernels.array_module(out).asarray(raw.reshape(out.shape).astype(out.dtype))  # to the GPU if out is there


def plan_reads(model, entries, from_hf_name, source):
    """{minigpt name: HF name} for every parameter, and the HF name of a tied lm_head (or None).
    Missing, unexpected or misshapen tensors are one error that lists them, before anything is read."""
    plan, lm_head, unexpected = {}, None, []
    for hf_name, (_, entry, _) in entries.items():
        ours = from_hf_name(hf_name)
        if ours == "buffer":
            continue
        if ours == "lm_head":
            lm_head = hf_name
        elif ours in plan:
            raise ValueError(f"{source}: {plan[ours]!r} and {hf_name!r} are the same tensor {ours!r}")
        elif ours in model.params:
            plan[ours] = hf_name
        else:
            unexpected.append(hf_name)
    missing = [name for name in model.params if name not in plan]
    if missing or unexpected:
        raise ValueError(f"{source} does not hold a {model.config.arch} language model minigpt can load: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]} (minigpt loads GPT2LMHeadModel / "
                         "OpenAIGPTLMHeadModel weights, or their base models, and nothing else)")
    tensors = [(ours, hf_name) for ours, hf_name in plan.items()] + ([("wte.weight", lm_head)] if lm_head else [])
    for ours, hf_name in tensors:  # (a skipped buffer may have any dtype: transformers 4 saved masks as bool)
        path, entry, _ = entries[hf_name]
        if entry["dtype"] not in FILE_DTYPES:
            raise ValueError(f"{path}: tensor {hf_name!r} has dtype {entry['dtype']!r}; minigpt reads the "
                             f"float dtypes {', '.join(FILE_DTYPES)}")
        shape = tuple(entries[hf_name][1]["shape"])
        if shape != model.params[ours].shape:
            raise ValueError(f"{source}: {hf_name} has shape {shape}, but the config makes {ours} "
                             f"{model.params[ours].shape}")
    return plan, lm_head


def check_sizes(entries, cfg, from_hf_name, source):
    """The embeddings' shapes and the number of layers in the files against the config, before the model is
    allocated: a config.json edited to a huge vocabulary would otherwise fill gigabytes with random weights
    before plan_reads found the mismatch. (plan_reads then checks every tensor.)"""
    expected = {"wte.weight": (cfg.vocab_size, cfg.n_embd), "wpe.weight": (cfg.block_size, cfg.n_embd)}
    layers = set()
    for hf_name, (_, entry, _) in entries.items():
        ours = from_hf_name(hf_name)
        if ours in expected and tuple(entry["shape"]) != expected[ours]:
            raise ValueError(f"{source}: {hf_name} has shape {tuple(entry['shape'])}, but the config makes {ours} "
                             f"{expected[ours]}")
        if ours.startswith("h.") and ours.split(".")[1].isdigit():
            layers.add(int(ours.split(".")[1]))
    if layers and max(layers) + 1 != cfg.n_layer:
        raise ValueError(f"{source}: the files hold {max(layers) + 1} layers, but the config makes {cfg.n_layer}")


def load_weights_into(model, entries, from_hf_name, source):
    """Fill model.params from HF safetensors files (their read_entries), tensor by tensor, in place."""
    plan, lm_head = plan_reads(model, entries, from_hf_name, source)
    for ours, hf_name in plan.items():
        path, entry, start = entries[hf_name]
        with open(path, "rb") as f:
            read_tensor(f, path, hf_name, entry, start, model.params[ours])
    if lm_head is not None:  # a separate copy of the tied head: it must equal wte, or the model is untied
        path, entry, start = entries[lm_head]
        head = np.empty(model.params["wte.weight"].shape, model.dtype)
        with open(path, "rb") as f:
            read_tensor(f, path, lm_head, entry, start, head)
        if not np.array_equal(head, to_host(model.params["wte.weight"])):
            raise ValueError(f"{source}: {lm_head} differs from the token embedding; minigpt ties its output head "
                             "to the token embedding, so an untied model cannot be loaded")


def to_host(x):
    """A NumPy array of x (CuPy arrays are copied to the host; NumPy arrays are returned as they are)."""
    return x if isinstance(x, np.ndarray) else x.get()
