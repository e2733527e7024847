"""All parameters in one buffer and all gradients in another, each layer keeping views of its slices.

A GPT keeps its weights in about 150 arrays (12 per block), and the layers want them apart. The
steps that treat every parameter alike do not: zeroing the gradients, their global norm, the AdamW
update. On a GPU each array is a launch of its own (tens of microseconds of Python, binding and
launch, while the GPU waits), so 150 arrays cost milliseconds a step; over one buffer each of these
steps is one or two launches. On the CPU the saving is smaller (a call into the C++ kernels costs
microseconds, not tens) but still one call instead of 50-150 per step, and one big AdamW update
splits evenly over the threads. llm.c keeps its parameters the same way. GPT(backend="cpu") and
GPT(backend="cuda") do this; backend="numpy" keeps one plain array per parameter, for reading.

The weights that take weight decay (the 2-D ones, as optim.AdamW decides) come first, so AdamW
covers the buffer in two launches, one with decay and one without. Each slice starts at a multiple
of 64 elements (256 bytes), so the kernels keep their aligned vector loads; the padding between
slices is zero in both buffers and adds nothing to a norm or an update.
"""
import math

from minigpt.kernels import array_module

ALIGN = 64  # elements: every slice starts 256 bytes into a float32 buffer's alignment


def parameter_slots(layers, prefix=""):
    """(dotted name, layer, key) of every parameter in a layer tree, in collect_parameters' order."""
    for name, layer in layers.items():
        path = f"{prefix}{name}"
        for key in getattr(layer, "params", {}):
            yield f"{path}.{key}", layer, key
        if hasattr(layer, "sublayers"):
            yield from parameter_slots(layer.sublayers(), f"{path}.")


class FlatParameters:
    """Moves the parameters and gradients of a layer tree into two flat buffers, in place.

    params, grads: the 1-D buffers; n_decay: the length of the leading part that holds the 2-D
    (weight-decayed) parameters; slices: {name: (start, shape)}. After construction every layer's
    params[key] and grads[key] is a view of its slice holding the same values as before; callers
    collect the dicts again (GPT does) so that model.params and model.grads hold the views too.
    """

    def __init__(self, layers):
        slots = list(parameter_slots(layers))
        if not slots:
            raise ValueError("FlatParameters: the layers hold no parameters")
        arrays = [layer.params[key] for _, layer, key in slots]
        if len({a.dtype for a in arrays}) != 1:
            raise ValueError(f"FlatParameters: the parameters mix dtypes {sorted({str(a.dtype) for a in arrays})}")
        if len({id(a) for a in arrays}) != len(arrays):
            raise ValueError("FlatParameters: one array is registered under two names; its slice would split it")
        # stable sort: the decayed (2-D and up) parameters first, each group in the model's order
        order = sorted(range(len(slots)), key=lambda i: arrays[i].ndim < 2)
        self.slices, end, self.n_decay = {}, 0, 0
        for i in order:
            self.slices[slots[i][0]] = (end, arrays[i].shape)
            end += -(-arrays[i].size // ALIGN) * ALIGN
            if arrays[i].ndim >= 2:
                self.n_decay = end
        xp = array_module(arrays[0])
        self.params = xp.zeros(end, dtype=arrays[0].dtype)
        self.grads = xp.zeros(end, dtype=arrays[0].dtype)
        self.param_views, self.grad_views = {}, {}  # the very objects the layers hold (holds() compares identity)
        for name, layer, key in slots:
            p, g = self.view(self.params, name), self.view(self.grads, name)
            p[...] = layer.params[key]
            g[...] = layer.grads[key]
            layer.params[key], layer.grads[key] = p, g
            self.param_views[name], self.grad_views[name] = p, g

    def view(self, buffer, name):
        """The slice of `buffer` (params, grads, or a moment shaped like them) that holds parameter `name`."""
        start, shape = self.slices[name]
        return buffer[start:start + math.prod(shape)].reshape(shape)

    def views(self, buffer):
        """{name: view} of a buffer shaped like params: the per-parameter dict of, e.g., an AdamW moment."""
        return {name: self.view(buffer, name) for name in self.slices}

    def holds(self, params=None, grads=None):
        """True when the given dicts hold exactly this buffer's views (nothing replaced, added or removed),
        so that one operation over the buffer is the same as one per array."""
        for given, views in ((params, self.param_views), (grads, self.grad_views)):
            if given is not None and (len(given) != len(views) or
                                      any(given.get(name) is not view for name, view in views.items())):
                return False
        return True
