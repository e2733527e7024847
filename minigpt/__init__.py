"""minigpt: a minimal, educational GPT engine. Hand-written forward and backward passes in NumPy,
with the hot kernels in a C++/OpenMP extension (backend="cpu")."""
from minigpt import kernels, layers
from minigpt.config import PRESETS, GPTConfig
from minigpt.model import GPT
from minigpt.optim import AdamW, clip_grad_norm, cosine_lr
from minigpt.tokenizer import BPETokenizer, CharTokenizer

__version__ = "0.1.0"
__all__ = ["GPT", "GPTConfig", "PRESETS", "AdamW", "clip_grad_norm", "cosine_lr", "BPETokenizer", "CharTokenizer",
           "kernels", "layers"]
