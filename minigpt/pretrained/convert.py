"""`minigpt convert`: a Hugging Face folder to a minigpt checkpoint, and back.

  HF folder -> checkpoint   out/ckpt-<step>/ (minigpt/checkpoint.py's format), which `minigpt
                            generate --checkpoint out` and fine-tuning start from
  checkpoint -> HF folder   a folder GPT2LMHeadModel / OpenAIGPTLMHeadModel loads

A checkpoint's tensors that are not the language model (a fine-tuning head, say), its special
tokens and its other fields and files travel in the HF folder's minigpt_* files (hf_folder.py),
so checkpoint -> HF -> checkpoint gives the same checkpoint back. The optimizer state does not
travel: an HF folder is a model, not a training run (resume from the original checkpoint).
"""
import os
import shutil
import warnings
from pathlib import Path

from minigpt.checkpoint import load_weights, read_info, save_checkpoint
from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.pretrained.hf_folder import Extras, load_pretrained, read_hf_config, save_pretrained
from minigpt.safetensors import load_file, save_file
from minigpt.tokenizer import tokenizer_from_dict

REBUILT = ("format", "version", "config", "dtype", "tokenizer", "optimizer")  # checkpoint.json fields made anew


def is_hf_folder(path):
    return (Path(path) / "config.json").is_file() and not (Path(path) / "checkpoint.json").is_file()


def hf_to_checkpoint(hf_folder, out_dir, dropout=None):
    """Write the HF model in hf_folder as out_dir/ckpt-<step>/; return its path."""
    hf, _ = read_hf_config(hf_folder)
    # a float64 model (as checkpoint_to_hf writes one, config "dtype") comes back float64; half-precision and
    # float32 files become float32, the dtype minigpt trains in
    dtype = "float64" if hf.get("dtype", hf.get("torch_dtype")) == "float64" else "float32"
    model, tokenizer, extras = load_pretrained(hf_folder, dtype=dtype, dropout=dropout)
    if tokenizer is None:  # a weights-only folder converts, but what is made of it should not surprise later
        warnings.warn(f"{hf_folder} has no tokenizer files (vocab.json + merges.txt), so the checkpoint holds the "
                      "model only: `minigpt generate` and fine-tuning need a tokenizer", stacklevel=2)
    info = dict(extras.info)
    step = info.pop("step", 0)
    if type(step) is not int or step < 0:  # it names the checkpoint folder, ckpt-<step>
        raise ValueError(f"{Path(hf_folder) / 'minigpt.json'}: 'step' must be a non-negative integer, got {step!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; convert into a folder")
    staging = out_dir / f".tmp-convert-{os.getpid()}"  # assembled beside its final place, then renamed
    shutil.rmtree(staging, ignore_errors=True)
    try:
        path = save_checkpoint(staging, model, step, tokenizer, extra=info)
        if extras.tensors:
            clash = set(extras.tensors) & set(model.params)
            if clash:
                raise ValueError(f"{hf_folder}: extra tensors {sorted(clash)[:5]} have the names of model weights")
            save_file({**model.params, **extras.tensors}, path / "model.safetensors")
        for extra in extras.files:
            (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, path / extra.name)
        final = out_dir / path.name
        if final.exists():
            raise FileExistsError(f"{final} already exists; convert into another folder")
        path.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def checkpoint_to_hf(checkpoint, hf_folder):
    """Write a minigpt checkpoint (or a run folder's latest) as a HF folder; return its path."""
    path, info = read_info(checkpoint)
    model = GPT(GPTConfig(**info["config"]), dtype=info["dtype"])
    tensors = load_file(path / "model.safetensors")
    load_weights(model, {k: v for k, v in tensors.items() if k in model.params}, source=str(path))
    extras = Extras(tensors={k: v for k, v in tensors.items() if k not in model.params},
                    info={k: v for k, v in info.items() if k not in REBUILT},
                    files=sorted(p for p in path.iterdir()
                                 if p.name not in ("model.safetensors", "optimizer.safetensors", "checkpoint.json")))
    tokenizer = tokenizer_from_dict(info["tokenizer"]) if info.get("tokenizer") else None
    return save_pretrained(model, hf_folder, tokenizer, extras)
