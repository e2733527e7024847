"""GPT-1 fine-tuning (Radford et al. 2018, sec. 3.2-3.3): a pre-trained GPT, task input transformations
with start, delimiter and extract tokens, a linear head on the extract token, the auxiliary LM loss.

    tokens.py       the start / delimiter / extract tokens, added to a tokenizer and a model
    transforms.py   Examples -> token sequences for the four task shapes; the truncation policy
    batch.py        padded batches with an explicit mask, extract positions and LM targets
    heads.py        the extract-token gather, the similarity sum, the candidate grid, the linear head
    losses.py       classification / multiple-choice cross-entropy, MSE, the auxiliary LM loss
    task_model.py   TaskModel: GPT + head, forward and backward of L = L_task + λ·L_LM
    modes.py        full and frozen fine-tuning, transferring the first n layers
    config.py       FineTuneConfig: the run's settings, their checks and help texts
    train.py        the fine-tuning loop (`minigpt finetune`)
    checkpoint.py   saving and loading a fine-tuned model
"""
from minigpt.finetune.batch import Batch, collate
from minigpt.finetune.checkpoint import load_task_model, save_task_model
from minigpt.finetune.modes import MODES, keep_first_layers, trainable_parameters
from minigpt.finetune.task_model import TaskModel
from minigpt.finetune.tokens import TASK_TOKENS, TaskTokens, add_task_tokens
from minigpt.finetune.transforms import EncodedExample, encode_example

__all__ = ["Batch", "collate", "load_task_model", "save_task_model", "MODES", "keep_first_layers",
           "trainable_parameters", "TaskModel", "TASK_TOKENS", "TaskTokens", "add_task_tokens", "EncodedExample",
           "encode_example"]
