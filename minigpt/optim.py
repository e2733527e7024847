"""AdamW (Loshchilov and Hutter 2019, arXiv:1711.05101), gradient clipping and the learning-rate schedule.

AdamW follows torch.optim.AdamW step for step, so runs can be compared with PyTorch:
    p <- p * (1 - lr * wd)                        decoupled weight decay (2-D weights only)
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
Biases, LayerNorm gains and other 1-D parameters are not decayed: shrinking them towards zero
does not regularise anything useful (as in GPT-2 and nanoGPT).
"""
import math

import numpy as np

from minigpt import kernels


class AdamW:
    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        # isfinite first: NaN would pass `lr < 0`, as every comparison with NaN is False
        # eps > 0: a parameter whose gradient has always been 0 (an unused position's row) has m = v = 0, and 0 / 0
        # would make it NaN at the first step
        finite = all(math.isfinite(v) for v in (lr, eps, weight_decay, *betas))
        if (not finite or lr < 0 or eps <= 0 or weight_decay < 0 or len(betas) != 2
                or not all(0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"AdamW: invalid hyperparameters lr={lr}, betas={betas}, eps={eps}, wd={weight_decay} "
                             "(lr and wd must be finite and >= 0, eps finite and > 0, each beta in [0, 1))")
        self.params, self.grads = model.params, model.grads
        self.backend = getattr(model, "backend", "numpy")
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        # A model whose parameters share one buffer (GPT on the cpu and cuda backends, minigpt/flat.py) gets
        # moments shaped like that buffer too, so a step is two calls (with and without decay), not one per array.
        self.flat = getattr(model, "flat", None)
        if self.flat is not None and not (self.flat.holds(self.params, self.grads) and all(
                self.decays(name) == (self.flat.slices[name][0] < self.flat.n_decay) for name in self.params)):
            self.flat = None
        if self.flat is not None:
            self.flat_m, self.flat_v = np.zeros_like(self.flat.params), np.zeros_like(self.flat.params)
            self.m, self.v = self.flat.views(self.flat_m), self.flat.views(self.flat_v)
        else:
            self.m = {name: np.zeros_like(p) for name, p in self.params.items()}  # first moment
            self.v = {name: np.zeros_like(p) for name, p in self.params.items()}  # second moment
        self.t = 0

    def decays(self, name):
        return self.params[name].ndim >= 2

    def step(self, lr=None):
        """One update of every parameter, in place. lr overrides self.lr (for a schedule)."""
        lr = self.lr if lr is None else lr
        if not (math.isfinite(lr) and lr >= 0):  # as __init__ checks self.lr: a schedule's NaN must not reach p
            raise ValueError(f"AdamW.step: lr must be a finite number >= 0, got {lr}")
        b1, b2 = self.betas
        self.t += 1
        bias1, bias2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        if self.flat is not None and self.flat.holds(self.params, self.grads):
            f, n = self.flat, self.flat.n_decay
            for part, weight_decay in ((slice(0, n), self.weight_decay), (slice(n, None), 0.0)):
                kernels.adamw_update(f.params[part], self.flat_m[part], self.flat_v[part], f.grads[part], lr, b1, b2,
                                     self.eps, weight_decay, bias1, bias2, backend=self.backend)
            return
        for name, p in self.params.items():
            weight_decay = self.weight_decay if self.decays(name) else 0.0
            kernels.adamw_update(p, self.m[name], self.v[name], self.grads[name], lr, b1, b2, self.eps,
                                 weight_decay, bias1, bias2, backend=self.backend)


def clip_grad_norm(grads, max_norm, flat=None):
    """Scale all gradients together so their global L2 norm is at most max_norm; return the norm before.

    Clipping the global norm (not each tensor) keeps the update's direction, as torch's clip_grad_norm_ does.
    flat: the model's FlatParameters (model.flat), when its buffer holds these gradients: then the norm
    and the scaling are one operation each over that buffer.
    """
    # A negative max_norm would flip every gradient's sign and NaN would never clip. (inf is fine: it only
    # measures the norm, as the trainers do when clipping is off.)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm}")
    if flat is not None and flat.holds(grads=grads):
        total = math.sqrt(float(flat.grads.dot(flat.grads)))
        if total > max_norm:
            flat.grads *= max_norm / (total + 1e-6)
        return total
    # each sum of squares is taken where its gradient lives; one number comes to the host, not one per tensor
    squares = (kernels.array_module(g).square(g, dtype=np.float64).sum() for g in grads.values())
    total = math.sqrt(float(sum(squares)))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


class NonFiniteStep(RuntimeError):
    """A training step whose loss or gradient norm is inf or NaN. It is raised before the optimizer's update,
    so the weights (and any checkpoint) stay as they were: one NaN update would spread to every weight."""


def check_finite_step(step, loss, grad_norm):
    """Raise NonFiniteStep when this step's loss or global gradient norm is not a finite number."""
    bad = [f"{what} is {value}" for what, value in (("the loss", loss), ("the gradient norm", grad_norm))
           if not math.isfinite(value)]
    if bad:
        raise NonFiniteStep(f"step {step}: {' and '.join(bad)}, so the weights were not updated. The run diverged "
                            "(try a lower learning rate or gradient clipping) or its data or weights hold inf/NaN")


def cosine_lr(step, max_lr, min_lr, warmup_iters, decay_iters):
    """Linear warmup from 0 to max_lr, then cosine decay to min_lr at decay_iters, then flat (nanoGPT's schedule)."""
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step > decay_iters:
        return min_lr
    ratio = (step - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)
