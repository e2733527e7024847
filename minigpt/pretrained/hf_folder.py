"""Hugging Face model folders: load one into minigpt, or save a minigpt model as one.

A folder holds config.json (model_type "gpt2" or "openai-gpt"), model.safetensors and the
tokenizer files (vocab.json, merges.txt, tokenizer_config.json). Nothing is downloaded: the folder
is on disk already (a clone of the model's hub repository, or one that transformers wrote).

What minigpt keeps that transformers has no place for goes into files transformers ignores:
  minigpt.json                the tokenizer when it has no HF form (characters, say), and a minigpt
                              checkpoint's own fields (step, run settings, fine-tuning settings)
  minigpt_extra.safetensors   tensors of the checkpoint that are not the language model (fine-tuning heads)
  minigpt_extra/              other files of the checkpoint folder, copied as they are
so a minigpt checkpoint survives a trip through the HF format (minigpt convert, both ways).

config.json's vocab_size is the number of embedding rows. It may exceed the tokenizer's vocabulary
(rows padded to a round number): the rows load and save as they are, and a sampler can then pick
an id the tokenizer has no text for (its decode says so).
"""
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minigpt.data import atomic_write_bytes
from minigpt.model import GPT
from minigpt.pretrained import hf_gpt2, hf_openai_gpt
from minigpt.pretrained.hf_tokenizer import read_hf_tokenizer, read_json_object, write_hf_tokenizer
from minigpt.pretrained.hf_weights import check_sizes, load_weights_into, read_entries, to_host, weight_files
from minigpt.safetensors import load_file, save_file
from minigpt.tokenizer import tokenizer_from_dict

BY_MODEL_TYPE = {"gpt2": hf_gpt2, "openai-gpt": hf_openai_gpt}
BY_ARCH = {"gpt2": hf_gpt2, "gpt1": hf_openai_gpt}
EXTRAS_JSON = "minigpt.json"
EXTRA_TENSORS = "minigpt_extra.safetensors"
EXTRA_FILES = "minigpt_extra"
EXTRAS_FORMAT = "minigpt-hf-extras"


@dataclass
class Extras:
    """What a minigpt checkpoint holds besides the language model and its tokenizer."""
    tensors: dict = field(default_factory=dict)  # name -> array (e.g. a fine-tuning head)
    info: dict = field(default_factory=dict)  # checkpoint.json fields (step, run settings, ...)
    files: list = field(default_factory=list)  # paths of other files to carry along


def read_hf_config(folder):
    """(config.json as a dict, the module for its model_type); clear errors for the wrong kind of folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (minigpt loads local Hugging Face model folders and "
                                "downloads nothing)")
    if (folder / "checkpoint.json").is_file():
        raise ValueError(f"{folder} is a minigpt checkpoint, not a Hugging Face folder: load it with "
                         "minigpt.checkpoint.load_model, or make a HF folder of it with `minigpt convert`")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json, so it is not a Hugging Face model folder")
    hf = read_json_object(folder / "config.json")
    model_type = hf.get("model_type")
    if not isinstance(model_type, str) or model_type not in BY_MODEL_TYPE:  # (a list is not hashable)
        raise ValueError(f"{folder / 'config.json'}: model_type {model_type!r} is not one minigpt loads "
                         f"(it loads {', '.join(BY_MODEL_TYPE)})")
    return hf, BY_MODEL_TYPE[model_type]


def load_hf_model(folder, dtype="float32", backend="numpy", dropout=None):
    """A GPT with the weights of a HF gpt2 / openai-gpt folder (float16/bfloat16 files become `dtype`)."""
    folder = Path(folder)
    hf, module = read_hf_config(folder)
    cfg = module.config_from_hf(hf, folder / "config.json", dropout)
    files = weight_files(folder)  # before the model is allocated: a pickle-only folder fails at once
    entries = read_entries(files)
    check_sizes(entries, cfg, module.from_hf_name, str(folder))  # and one that does not fit the config
    model = GPT(cfg, dtype=dtype, backend=backend)
    load_weights_into(model, entries, module.from_hf_name, source=str(folder))
    return model


def read_extras_json(folder):
    path = Path(folder) / EXTRAS_JSON
    if not path.is_file():
        return None
    extras = read_json_object(path)
    if extras.get("format") != EXTRAS_FORMAT:
        raise ValueError(f"{path} is not a file minigpt wrote (format {extras.get('format')!r})")
    if not isinstance(extras.get("info", {}), dict):
        raise ValueError(f"{path}: 'info' must be an object, got a {type(extras['info']).__name__}")
    if not isinstance(extras.get("tokenizer"), (dict, type(None))):
        raise ValueError(f"{path}: 'tokenizer' must be an object or null, got a {type(extras['tokenizer']).__name__}")
    return extras


def tokenizer_from_pretrained(folder):
    """The tokenizer of a HF model folder (vocab.json + merges.txt), as a minigpt tokenizer."""
    tokenizer = read_folder_tokenizer(folder)
    if tokenizer is None:
        raise FileNotFoundError(f"{folder} has no tokenizer files (vocab.json and merges.txt)")
    return tokenizer


def read_folder_tokenizer(folder):
    """The folder's tokenizer (minigpt.json's, or vocab.json + merges.txt), or None if it has no tokenizer
    files at all. Tokenizer files minigpt cannot read (tokenizer.json alone, vocab.json without merges.txt)
    are an error that says how to fix them, not None."""
    folder = Path(folder)
    hf, _ = read_hf_config(folder)
    extras = read_extras_json(folder)
    if extras and extras.get("tokenizer"):
        try:
            return tokenizer_from_dict(extras["tokenizer"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"{folder / EXTRAS_JSON}: 'tokenizer' is not a valid minigpt tokenizer: {e}") from None
    return read_hf_tokenizer(folder, hf["model_type"])


def load_pretrained(folder, dtype="float32", backend="numpy", dropout=None):
    """(model, tokenizer or None, Extras) from a HF model folder, with what minigpt saved beside it.

    The tokenizer is None only for a folder with no tokenizer files at all (weights only: fine for a
    model, the caller decides whether it needs text). A folder that ships a tokenizer minigpt cannot
    read (tokenizer.json without vocab.json + merges.txt, or half of the pair) is an error, not None:
    whoever converts such a folder expects its tokenizer to come along, and a checkpoint without it
    could not generate text (a warning would scroll past, and the fix is to convert again anyway, once
    the files are there: the message says how)."""
    folder = Path(folder)
    tokenizer = read_folder_tokenizer(folder)  # first: quick to read, so a broken one fails before the weights load
    model = load_hf_model(folder, dtype, backend, dropout)
    if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                         f"{model.config.vocab_size} embeddings")
    saved = read_extras_json(folder) or {}
    extra_dir = folder / EXTRA_FILES
    extras = Extras(tensors=load_file(folder / EXTRA_TENSORS) if (folder / EXTRA_TENSORS).is_file() else {},
                    info=saved.get("info", {}),
                    files=sorted(extra_dir.iterdir()) if extra_dir.is_dir() else [])
    return model, tokenizer, extras


def save_pretrained(model, folder, tokenizer=None, extras=None):
    """Write `model` as a HF folder that GPT2LMHeadModel (arch gpt2) / OpenAIGPTLMHeadModel (gpt1) loads.

    The folder must not exist yet or be empty. Files are written into a temporary folder that is
    renamed into place, so an interrupted save leaves nothing half-written."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} already exists and is not an empty folder; choose a new one")
    if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                         f"{model.config.vocab_size} embeddings")
    extras = extras or Extras()
    module = BY_ARCH[model.config.arch]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_model(model, module, tmp, tokenizer)
        keep_tokenizer = tokenizer is not None and not write_hf_tokenizer(tokenizer, tmp, model.config.block_size)
        if keep_tokenizer:
            warnings.warn(f"a {type(tokenizer).__name__} has no Hugging Face form: {folder} gets no tokenizer "
                          f"files for transformers, and minigpt keeps it in {EXTRAS_JSON}", stacklevel=2)
        write_extras(tmp, extras, tokenizer if keep_tokenizer else None)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_model(model, module, folder, tokenizer):
    """config.json and model.safetensors under HF's names ({"format": "pt"} is what transformers checks for)."""
    tensors = {module.to_hf_name(name): to_host(p) for name, p in model.params.items()}
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    hf = module.config_to_hf(model.config, tokenizer.eot_token if tokenizer is not None else None)
    hf["dtype"] = np.dtype(model.dtype).name
    atomic_write_bytes(folder / "config.json", json.dumps(hf, indent=1).encode())


def write_extras(folder, extras, tokenizer):
    """minigpt.json, minigpt_extra.safetensors and minigpt_extra/: only what there is to keep."""
    if extras.tensors:
        save_file({k: to_host(v) for k, v in extras.tensors.items()}, folder / EXTRA_TENSORS)
    if extras.files:
        (folder / EXTRA_FILES).mkdir()
        for path in extras.files:
            copy = shutil.copytree if Path(path).is_dir() else shutil.copy2
            copy(path, folder / EXTRA_FILES / Path(path).name)
    if extras.info or tokenizer is not None:
        saved = {"format": EXTRAS_FORMAT, "version": 1, "info": extras.info,
                 "tokenizer": tokenizer.to_dict() if tokenizer is not None else None}
        atomic_write_bytes(folder / EXTRAS_JSON, json.dumps(saved, indent=1).encode())
