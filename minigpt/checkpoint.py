"""Checkpoints: everything needed to continue a run or to use its model, with no pickle anywhere.

A checkpoint is a folder out/ckpt-<step>/ holding
    model.safetensors       the weights, under their GPT-2 names
    optimizer.safetensors   AdamW's moments m.<name>, v.<name> (absent for weights-only saves)
    checkpoint.json         config, dtype, tokenizer, step, optimizer settings, random-generator
                            states, the run's arguments and its latest metrics
It is written into a temporary folder and renamed into place: a rename is atomic, so an
interrupted save leaves the previous checkpoints intact and never a half-written one. Every
saved step is kept (zero-shot curves over pre-training read them) unless the caller prunes.
"""
import json
import numbers
import os
import re
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np

from minigpt.config import GPTConfig
from minigpt.data import atomic_write_bytes
from minigpt.kernels.backend import array_module, to_host
from minigpt.model import GPT
from minigpt.safetensors import load_file, save_file

FORMAT = "minigpt-checkpoint"
STEP_DIR = re.compile(r"^ckpt-(\d+)$")


def save_checkpoint(out_dir, model, step, tokenizer=None, optimizer=None, extra=None):
    """Write out_dir/ckpt-<step>/ atomically; return its path. extra: JSON-serialisable dict."""
    # -1 would write ckpt--000001, which no load finds
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"save_checkpoint: step must be an integer >= 0, got {step!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"ckpt-{step:07d}"
    tmp = out_dir / f".tmp-ckpt-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({name: to_host(p) for name, p in model.params.items()}, tmp / "model.safetensors")  # GPU: copied
    info = {"format": FORMAT, "version": 1, "step": int(step), "config": model.config.to_dict(),
            "dtype": np.dtype(model.dtype).name, "tokenizer": tokenizer.to_dict() if tokenizer else None,
            **(extra or {})}
    if optimizer is not None:
        moments = ({f"m.{k}": to_host(v) for k, v in optimizer.m.items()} |
                   {f"v.{k}": to_host(v) for k, v in optimizer.v.items()})
        save_file(moments, tmp / "optimizer.safetensors")
        info["optimizer"] = {"t": optimizer.t, "lr": optimizer.lr, "betas": list(optimizer.betas),
                             "eps": optimizer.eps, "weight_decay": optimizer.weight_decay}
    atomic_write_bytes(tmp / "checkpoint.json", json.dumps(info, indent=1).encode())
    if final.exists():  # saving the same step again: move the old one aside first
        old = out_dir / f".old-{final.name}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    return final


def clean_unfinished_saves(out_dir):
    """Tidy what a save killed midway left in out_dir (call it with the run folder claimed, runlock.py, so no
    save is running): .tmp-ckpt-* folders, each incomplete and up to three times the model's size, are removed;
    an .old-ckpt-* folder (a step saved again, moved aside) goes back to its name if its replacement never
    arrived, else it is removed. Returns {name: "removed" or "restored as ckpt-..."}."""
    out_dir, done = Path(out_dir), {}
    for tmp in sorted(out_dir.glob(".tmp-ckpt-*")):
        shutil.rmtree(tmp, ignore_errors=True)
        done[tmp.name] = "removed"
    for old in sorted(out_dir.glob(".old-ckpt-*")):
        final = out_dir / old.name[len(".old-"):].rsplit("-", 1)[0]  # .old-ckpt-0000100-4242 -> ckpt-0000100
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            done[old.name] = "removed"
        else:
            old.rename(final)
            done[old.name] = f"restored as {final.name}"
    return done


def list_checkpoints(out_dir):
    """[(step, path)] of the complete checkpoints in out_dir, oldest first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = []
    for path in out_dir.iterdir():
        match = STEP_DIR.match(path.name)
        if match and (path / "checkpoint.json").exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_checkpoint(path):
    """A checkpoint folder itself, or the latest checkpoint inside a run's output folder."""
    path = Path(path)
    if (path / "checkpoint.json").exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {path} (expected checkpoint.json, or ckpt-<step>/ folders)")
    return found[-1][1]


def read_info(path):
    """(checkpoint folder, checkpoint.json as a dict), with the fields every checkpoint has checked."""
    path = resolve_checkpoint(path)
    try:
        info = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # not UTF-8 JSON, an integer too long to convert, nested too deep
        raise ValueError(f"{path / 'checkpoint.json'} is corrupted ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path / 'checkpoint.json'} holds a JSON {type(info).__name__}, not an object "
                         "(the file is damaged or not from minigpt)")
    if info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a minigpt checkpoint")
    require_fields(path, info, ("step", "config", "dtype"))
    if type(info["step"]) is not int or info["step"] < 0:
        raise ValueError(f"{path / 'checkpoint.json'}: 'step' must be a non-negative integer, got {info['step']!r} "
                         "(the file is damaged or not from minigpt)")
    check_config(path, info["config"])
    if not isinstance(info.get("tokenizer"), (dict, type(None))):
        raise ValueError(f"{path / 'checkpoint.json'}: 'tokenizer' is a {type(info['tokenizer']).__name__}, not an "
                         "object (the file is damaged or not from minigpt)")
    return path, info


def require_fields(path, info, names):
    """Raise a ValueError naming checkpoint.json when a field the caller reads is missing: a hand-edited
    or foreign file then fails here, at load time, rather than as a KeyError deep inside a run."""
    missing = [name for name in names if name not in info]
    if missing:
        raise ValueError(f"{Path(path) / 'checkpoint.json'}: missing {', '.join(map(repr, missing))} "
                         "(the file is damaged or not from minigpt)")


def check_config(path, config):
    """The saved config must hold exactly GPTConfig's fields: a missing one would silently take its
    default (another vocabulary size, say), and an unknown one means the file was not written by minigpt."""
    source = Path(path) / "checkpoint.json"
    if not isinstance(config, dict):
        raise ValueError(f"{source}: 'config' is a {type(config).__name__}, not an object "
                         "(the file is damaged or not from minigpt)")
    known = {f.name for f in fields(GPTConfig)}
    unknown, missing = sorted(set(config) - known), sorted(known - set(config))
    if unknown:
        raise ValueError(f"{source}: 'config' has unknown fields {unknown} (the file is damaged or not from minigpt)")
    if missing:
        raise ValueError(f"{source}: 'config' lacks the fields {missing} (the file is damaged or not from minigpt)")
    try:
        GPTConfig(**config)
    except ValueError as e:
        raise ValueError(f"{source}: {e} (the file is damaged or not from minigpt)") from None


def load_weights(model, tensors, source="checkpoint"):
    """Copy {name: array} into the model's parameters in place, checking names and shapes first."""
    missing = sorted(set(model.params) - set(tensors))
    unexpected = sorted(set(tensors) - set(model.params))
    if missing or unexpected:
        raise ValueError(f"{source} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, value in tensors.items():
        if value.shape != model.params[name].shape:
            raise ValueError(f"{source}: {name} has shape {value.shape}, the model expects {model.params[name].shape}")
        if not np.isfinite(value).all():  # such a model writes token 0 forever, or scores every answer alike
            raise ValueError(f"{source}: {name} holds NaN or inf values; the weights are damaged (or were saved "
                             "from a run that diverged)")
    for name, value in tensors.items():
        target = model.params[name]
        target[...] = array_module(target).asarray(value)  # a copy to the GPU for backend="cuda"


def load_model(path, backend="numpy", dtype=None):
    """(model, info) from a checkpoint folder or a run folder (its latest checkpoint)."""
    path, info = read_info(path)
    if info.get("finetune"):  # its task head's weights (head.*) are not the language model's
        raise ValueError(f"{path} is a fine-tuned task model (minigpt finetune); generate, evaluate and "
                         "perplexity take a pre-trained checkpoint, such as the one it was fine-tuned from "
                         "(load a task model with minigpt.finetune.load_task_model)")
    model = GPT(GPTConfig(**info["config"]), dtype=dtype or info["dtype"], backend=backend)
    load_weights(model, load_file(path / "model.safetensors"), source=str(path))
    return model, info


def load_optimizer_state(optimizer, path, info):
    """Restore AdamW's moments and step count from a checkpoint written with an optimizer. Everything is checked
    before anything is copied, so a damaged file leaves the optimizer as it was."""
    t = info["optimizer"].get("t") if isinstance(info["optimizer"], dict) else None
    if type(t) is not int or t < 0:  # AdamW's step count: its bias correction divides by 1 - beta^t
        raise ValueError(f"{Path(path) / 'checkpoint.json'}: optimizer.t must be a step count, got {t!r} (the file is "
                         "damaged)")
    source = Path(path) / "optimizer.safetensors"
    moments = load_file(source)
    for name in optimizer.m:
        for key in (f"m.{name}", f"v.{name}"):
            # a (1,) or 0-d array would broadcast into the whole moment; a negative v makes sqrt(v) NaN
            if key not in moments:
                raise ValueError(f"{source}: no {key} (the file is damaged, or from another model)")
            if moments[key].shape != optimizer.m[name].shape:
                raise ValueError(f"{source}: {key} has shape {moments[key].shape}, the model's {name} "
                                 f"{optimizer.m[name].shape} (the file is damaged, or from another model)")
            if not np.isfinite(moments[key]).all() or (key[0] == "v" and (moments[key] < 0).any()):
                raise ValueError(f"{source}: {key} holds NaN, inf{' or negative values' if key[0] == 'v' else ''} "
                                 "(the file is damaged, or was saved from a run that diverged)")
    for name in optimizer.m:
        xp = array_module(optimizer.m[name])
        optimizer.m[name][...] = xp.asarray(moments[f"m.{name}"])
        optimizer.v[name][...] = xp.asarray(moments[f"v.{name}"])
    optimizer.t = t
