"""TaskModel: a GPT with a task head, trained on L = L_task + λ·L_LM (Radford et al. 2018, sec. 3.2).

forward(batch) runs the transformer once over every sequence of the batch (GPT.forward_hidden),
reads the head's output at the extract tokens, and, when λ > 0, scores the same hidden states
with the tied LM head for the auxiliary loss. backward() adds the two gradients of the hidden
states, dh = dh_task + λ·dh_LM, and hands the sum to GPT.backward_hidden, in plain sight like
GPT.backward. λ = 0 skips the LM head's work in training altogether.

params / grads hold the GPT's arrays under their GPT-2 names plus head.weight and head.bias (no bias
for multiple choice), so a checkpoint saves and loads a TaskModel like a GPT.
"""
import numpy as np

from minigpt.finetune.heads import TaskHead
from minigpt.finetune.losses import (classification_loss_backward, classification_loss_forward, lm_loss_backward,
                                     lm_loss_forward, mse_backward, mse_forward)


class TaskModel:
    def __init__(self, gpt, shape, n_out, regression=False, aux_lm=0.5, first_new_id=None, seed=0):
        """gpt: a GPT that already has the task tokens (tokens.add_task_tokens); n_out: the number of
        classes, or 1 (multiple choice and regression); aux_lm: λ >= 0; first_new_id: the first token
        row added for fine-tuning (what frozen mode trains); seed: the head's initialisation."""
        if not (isinstance(aux_lm, (int, float)) and aux_lm >= 0):
            raise ValueError(f"the auxiliary LM weight λ must be a number >= 0, got {aux_lm!r}")
        if regression and (n_out != 1 or shape != "similarity"):
            raise ValueError("a regression head has one output and is for similarity (graded, like STS-B) tasks")
        self.gpt, self.shape, self.regression, self.aux_lm = gpt, shape, regression, float(aux_lm)
        self.config, self.dtype, self.backend = gpt.config, gpt.dtype, gpt.backend
        self.first_new_id = gpt.config.vocab_size if first_new_id is None else first_new_id
        head_rng = np.random.default_rng([seed, 4])  # its own stream: the head never shifts other draws
        self.head = TaskHead(shape, n_out, gpt.config.n_embd, gpt.config.dropout, head_rng, gpt.dtype, gpt.backend)
        self.params = {**gpt.params, **{f"head.{k}": v for k, v in self.head.params.items()}}
        self.grads = {**gpt.grads, **{f"head.{k}": v for k, v in self.head.grads.items()}}
        self.cache = None

    def forward(self, batch, train=True, with_lm=None):
        """batch: Batch -> (outputs, losses). outputs: class logits (N, K), candidate scores (N, K) or
        regression scores (N,); losses: {"loss", "task_loss", "lm_loss"} as floats (lm_loss None when not
        computed). with_lm: compute the LM loss (default: when λ > 0; evaluation asks for it anyway)."""
        with_lm = self.aux_lm > 0 if with_lm is None else with_lm
        h = self.gpt.forward_hidden(batch.idx, train)  # (S, T, C)
        outputs = self.head.forward(h, batch, self.gpt.dropout_rng, train)
        # labels and LM targets stay on the host: the losses check and count them there and copy them in
        if self.regression:
            task_loss, task_cache = mse_forward(outputs, batch.labels)
        else:
            task_loss, task_cache = classification_loss_forward(outputs, batch.labels)
        lm_loss, lm_cache = None, None
        if with_lm:
            lm_loss, lm_cache = lm_loss_forward(h, self.gpt.wte.params["weight"], batch.lm_targets, self.backend)
        self.cache = (task_cache, lm_cache)
        loss = task_loss + (self.aux_lm * lm_loss if lm_loss is not None else 0.0)
        return outputs, {"loss": loss, "task_loss": task_loss, "lm_loss": lm_loss}

    def backward(self):
        """Backpropagate the last forward's loss, adding into self.grads (call zero_grad first)."""
        if self.cache is None:
            raise RuntimeError("backward() needs a forward(batch) first")
        task_cache, lm_cache = self.cache
        if self.regression:
            doutputs = mse_backward(1.0, task_cache)
        else:
            doutputs = classification_loss_backward(1.0, task_cache)
        dh = self.head.backward(doutputs)  # (S, T, C)
        if lm_cache is not None and self.aux_lm > 0:
            dh_lm, dwte = lm_loss_backward(self.aux_lm, lm_cache)
            dh += dh_lm  # the two losses read the same hidden states: their gradients add
            self.gpt.wte.grads["weight"] += dwte  # the tied LM head's share of the embedding's gradient
        self.gpt.backward_hidden(dh)

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def num_params(self):
        return sum(p.size for p in self.params.values())

    def predict(self, outputs):
        """Host predictions from forward's outputs: class or candidate index (argmax), or the score."""
        outputs = outputs.get() if hasattr(outputs, "get") else np.asarray(outputs)  # .get(): CuPy to host
        return outputs.astype(np.float64) if self.regression else outputs.argmax(axis=-1)
