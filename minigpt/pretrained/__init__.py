"""Hugging Face interop: GPT-2 and OpenAI-GPT (GPT-1) weights in, minigpt models out, no download.

    model = GPT.from_pretrained("path/to/gpt2")            # config.json + model.safetensors, local
    tokenizer = tokenizer_from_pretrained("path/to/gpt2")  # vocab.json + merges.txt
    model.save_pretrained("out", tokenizer)                # transformers: GPT2LMHeadModel.from_pretrained("out")

  hf_config.py       checks shared by the config readers (LayerNorm eps, tied head, dropout)
  hf_gpt2.py         model_type "gpt2" (pre-LN): config fields and tensor names
  hf_openai_gpt.py   model_type "openai-gpt" (post-LN GPT-1): config fields and tensor names
  hf_weights.py      safetensors straight into the model's parameters, a tensor at a time
  hf_tokenizer.py    vocab.json / merges.txt / tokenizer_config.json, read and written
  hf_folder.py       whole folders: load_pretrained, save_pretrained, and minigpt's extra files
  convert.py         `minigpt convert`: HF folder <-> minigpt checkpoint

Parity with transformers (logits, greedy continuations, gradients, tokenizers) is tested in
tests/test_parity_*.py when torch and transformers are installed (`pip install .[parity]`).
"""
from minigpt.pretrained.convert import checkpoint_to_hf, hf_to_checkpoint, is_hf_folder
from minigpt.pretrained.hf_folder import (Extras, load_hf_model, load_pretrained, save_pretrained,
                                          tokenizer_from_pretrained)

__all__ = ["load_hf_model", "load_pretrained", "save_pretrained", "tokenizer_from_pretrained", "Extras",
           "hf_to_checkpoint", "checkpoint_to_hf", "is_hf_folder"]
