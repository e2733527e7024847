"""Fine-tuned checkpoints: minigpt/checkpoint.py's folders (atomic, safetensors + JSON, no pickle) with
the task head's weights beside the GPT's (head.weight, head.bias), the tokenizer with its start,
delimiter and extract tokens, the grown config, and a "finetune" record that says how to rebuild the
head: the task's shape, labels and metrics, and the run's settings.
"""
from minigpt.checkpoint import load_weights, read_info, save_checkpoint
from minigpt.config import GPTConfig
from minigpt.finetune.task_model import TaskModel
from minigpt.finetune.tokens import TASK_TOKENS, TaskTokens
from minigpt.model import GPT
from minigpt.safetensors import load_file
from minigpt.tokenizer import tokenizer_from_dict


def save_task_model(out_dir, model, step, tokenizer, task, settings, metrics=None):
    """Write out_dir/ckpt-<step>/ atomically; return its path. task: TaskData; settings: a JSON-able dict."""
    record = {"task": task.name, "shape": model.shape, "labels": list(task.labels) if task.labels else None,
              "metrics": list(task.metrics), "n_out": model.head.n_out, "regression": model.regression,
              "aux_lm": model.aux_lm, "first_new_id": model.first_new_id, "settings": settings}
    return save_checkpoint(out_dir, model, step, tokenizer, extra={"finetune": record, "metrics": metrics})


def load_task_model(path, backend="numpy", dtype=None):
    """(model, tokenizer, tokens, info) from a fine-tuned checkpoint folder, or a run folder (its latest)."""
    path, info = read_info(path)
    record = info.get("finetune")
    if record is None:
        raise ValueError(f"{path} is a pre-trained checkpoint, not a fine-tuned one (it has no task head)")
    tokenizer = tokenizer_from_dict(info["tokenizer"])
    missing = [t for t in TASK_TOKENS if t not in tokenizer.special_tokens]
    if missing:
        raise ValueError(f"{path}: the tokenizer lacks the task tokens {missing}")
    ids = [tokenizer.special_tokens[t] for t in TASK_TOKENS]
    tokens = TaskTokens(*ids, first_new_id=record["first_new_id"])
    gpt = GPT(GPTConfig(**info["config"]), dtype=dtype or info["dtype"], backend=backend)
    model = TaskModel(gpt, record["shape"], record["n_out"], regression=record["regression"],
                      aux_lm=record["aux_lm"], first_new_id=record["first_new_id"])
    load_weights(model, load_file(path / "model.safetensors"), source=str(path))
    return model, tokenizer, tokens, info
