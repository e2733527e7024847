"""The ops a GPT spends its time in, and the only door to the compiled extensions.

Every op has up to three implementations with one signature: a NumPy reference written to be read
(any float dtype; host or CuPy arrays), the C++/OpenMP version in minigpt._core (float32,
C-contiguous NumPy arrays) and the CUDA version in minigpt._cuda (float32, C-contiguous CuPy
arrays), each checked by its binding. Callers pick one with backend="numpy" | "cpu" | "cuda".

  matmul                                     out = op(a) @ op(b) (+ bias)          matmul.py
  bias_grad                                  db (+)= dout.sum(axis=0)              bias_grad.py
  softmax_forward / _backward                over the last axis                    softmax.py
  attention_forward / _backward              causal attention, dropout, lse only   attention.py
  attention_forward_fused / _backward_fused  on the heads inside qkv (C++, CUDA)   attention.py
  attention_with_cache                       generation over a KV cache            attention.py
  attention_cached                           from qkv, extending the cache         attention.py
  layernorm_forward / _backward              saves mean and rstd per row           layernorm.py
  gelu_forward / _backward                   tanh form                             gelu.py
  cross_entropy_forward / _backward          fused with softmax, per row           cross_entropy.py
  adamw_update                               one array (the flat buffer), in place adamw.py
  embedding_forward / _backward              row lookup, scatter-add               embedding.py
"""
from minigpt.kernels.adamw import adamw_update
from minigpt.kernels.attention import (FUSED_BACKENDS, attention_backward, attention_backward_fused, attention_cached,
                                      attention_forward, attention_forward_fused, attention_with_cache,
                                      dropout_keep_mask)
from minigpt.kernels.backend import (_CORE_IMPORT_ERROR, _CUDA_IMPORT_ERROR, BACKEND_HELP, BACKENDS, _core, _cuda,
                                    array_module, check_backend, core_info, cuda_info, cuda_problem, describe_backend,
                                    set_cuda_tf32, to_backend, to_host)
from minigpt.kernels.bias_grad import bias_grad
from minigpt.kernels.cross_entropy import cross_entropy_backward, cross_entropy_forward
from minigpt.kernels.embedding import embedding_backward, embedding_forward
from minigpt.kernels.gelu import gelu_backward, gelu_forward
from minigpt.kernels.layernorm import layernorm_backward, layernorm_forward
from minigpt.kernels.matmul import matmul
from minigpt.kernels.softmax import softmax_backward, softmax_forward
