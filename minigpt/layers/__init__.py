"""The layers of a GPT. Each is a pair of plain functions, <layer>_forward(...) -> (out, cache) and
<layer>_backward(dout, cache) -> grads, plus a thin class that holds params, grads and the cache.

A class instance keeps the cache of its last forward only, so each place in the network has its
own instance; to apply one weight twice, call the function pair and add both gradients."""
from minigpt.layers.attention import (CausalSelfAttention, merge_heads, self_attention_backward,
                                      self_attention_forward, split_heads)
from minigpt.layers.cross_entropy import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from minigpt.layers.dropout import Dropout, dropout_backward, dropout_forward
from minigpt.layers.embedding import Embedding, embedding_backward, embedding_forward
from minigpt.layers.gelu import GELU, gelu_backward, gelu_forward
from minigpt.layers.layernorm import LayerNorm, layernorm_backward, layernorm_forward
from minigpt.layers.linear import Linear, linear_backward, linear_forward
from minigpt.layers.mlp import MLP
