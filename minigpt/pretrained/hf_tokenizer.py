"""Tokenizer files of a Hugging Face model folder: vocab.json + merges.txt, read and written.

  gpt2        GPT-2's byte-level BPE: vocab.json and merges.txt are OpenAI's encoder.json and
              vocab.bpe under other names, read by minigpt.tokenizer.gpt2_files (BPETokenizer).
  openai-gpt  GPT-1's lowercased BPE with '</w>' word ends (minigpt.tokenizer.OpenAIGPTTokenizer).

Which one a folder holds: tokenizer_config.json's tokenizer_class if it names one, otherwise the
model_type of config.json. Tokens added after training (GPT-1's fine-tuning tokens, say) are not in
vocab.json; HF lists them in tokenizer_config.json (added_tokens_decoder), tokenizer.json
(added_tokens) or added_tokens.json, and they become minigpt special tokens with the same ids.

Written folders hold vocab.json, merges.txt and a tokenizer_config.json with the class and the
added tokens, which transformers' GPT2Tokenizer / OpenAIGPTTokenizer read. A tokenizer with no HF
form (characters, or a BPE with its own split pattern) is not written here; the caller keeps it
in minigpt's own file instead.
"""
import json
from pathlib import Path

from minigpt.data import atomic_write_bytes
from minigpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, OpenAIGPTTokenizer, bytes_to_unicode
from minigpt.tokenizer.gpt2_files import read_gpt2_files

CLASSES = {"GPT2Tokenizer": "gpt2", "GPT2TokenizerFast": "gpt2", "OpenAIGPTTokenizer": "openai-gpt",
           "OpenAIGPTTokenizerFast": "openai-gpt"}
# Classes that say nothing of the vocabulary's kind: the folder's model_type decides. Any other class (a
# LlamaTokenizer, say) is a tokenizer minigpt does not read, whatever vocab.json holds.
GENERIC_CLASSES = (None, "PreTrainedTokenizer", "PreTrainedTokenizerFast", "AutoTokenizer")


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError too
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_json_object(path):
    """A JSON file that must hold an object (a dict): a list or a number there is an error naming the file."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds a JSON {type(data).__name__}, not an object; the file is damaged "
                         "or not what its name says")
    return data


def read_hf_tokenizer(folder, model_type):
    """The tokenizer in a HF model folder, or None if it has no tokenizer files at all."""
    folder = Path(folder)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        check_no_unreadable_tokenizer(folder)
        return None
    tok_config = read_tokenizer_config(folder)
    named = tok_config.get("tokenizer_class")
    kind = CLASSES.get(named, model_type if named in GENERIC_CLASSES else None)
    if kind == "gpt2":
        byte_ids, merge_ids, specials = read_gpt2_files(vocab, merges)
        tokenizer = BPETokenizer(merge_ids, specials, byte_ids=byte_ids)
    elif kind == "openai-gpt":
        tokenizer = OpenAIGPTTokenizer.from_files(vocab, merges)
    else:
        raise ValueError(f"{folder}: tokenizer class {tok_config.get('tokenizer_class')!r} with model_type "
                         f"{model_type!r} is not a tokenizer minigpt reads (GPT2Tokenizer, OpenAIGPTTokenizer)")
    add_hf_added_tokens(tokenizer, added_tokens(folder, tok_config), folder)
    return tokenizer


def check_no_unreadable_tokenizer(folder):
    """A folder without vocab.json + merges.txt may still have a tokenizer minigpt cannot read: say so and how
    to fix it. Passing over it (as if the folder had no tokenizer) would give a model whose ids cannot be
    turned into text, with nothing to tell why."""
    if (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{folder} has tokenizer.json but not vocab.json + merges.txt, which minigpt reads. Write them "
            "once with transformers installed: python -c \"from transformers import AutoTokenizer; "
            f"AutoTokenizer.from_pretrained('{folder}').backend_tokenizer.model.save('{folder}')\"")
    present = [name for name in ("vocab.json", "merges.txt") if (folder / name).is_file()]
    if present:
        missing = "merges.txt" if present == ["vocab.json"] else "vocab.json"
        raise FileNotFoundError(f"{folder} has {present[0]} but no {missing}; minigpt reads the tokenizer from "
                                f"both (copy {missing} from where the model came from)")


def read_tokenizer_config(folder):
    """tokenizer_config.json as a dict ({} if there is none), its tokenizer_class checked to be a name."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    tok_config = read_json_object(path)
    if not isinstance(tok_config.get("tokenizer_class"), (str, type(None))):
        raise ValueError(f"{path}: 'tokenizer_class' must be a string, got {tok_config['tokenizer_class']!r}")
    return tok_config


def added_tokens(folder, tok_config):
    """{id: text} of the tokens HF added to the vocabulary, from whichever files list them.
    The files must agree: one id with two texts is an error, not a silent choice of one."""
    found = {}  # id -> (text, the file that gave it)
    listed = [(folder / "tokenizer_config.json", decoder_tokens(folder / "tokenizer_config.json", tok_config))]
    if (folder / "tokenizer.json").is_file():
        listed.append((folder / "tokenizer.json", tokenizer_json_tokens(folder / "tokenizer.json")))
    if (folder / "added_tokens.json").is_file():
        listed.append((folder / "added_tokens.json", added_tokens_json(folder / "added_tokens.json")))
    for path, tokens in listed:
        for token_id, text in tokens:
            if token_id in found and found[token_id][0] != text:
                raise ValueError(f"{path} gives id {token_id} to {text!r}, but {found[token_id][1]} to "
                                 f"{found[token_id][0]!r}")
            found[token_id] = (text, path)
    return {token_id: text for token_id, (text, _) in found.items()}


def is_token_id(value):
    return type(value) is int and value >= 0  # (not bool, which is an int to isinstance)


def decoder_tokens(path, tok_config):
    """[(id, text)] of tokenizer_config.json's "added_tokens_decoder": {"<id>": {"content": text, ...}}."""
    decoder = tok_config.get("added_tokens_decoder", {})
    if not isinstance(decoder, dict):
        raise ValueError(f"{path}: 'added_tokens_decoder' must be an object of id -> token, "
                         f"got a {type(decoder).__name__}")
    tokens = []
    for key, entry in decoder.items():
        text = entry.get("content") if isinstance(entry, dict) else entry
        if not key.isascii() or not key.isdecimal() or not isinstance(text, str):
            raise ValueError(f"{path}: added_tokens_decoder holds {key!r}: {entry!r:.100}; each entry must be "
                             "\"<id>\": {\"content\": text, ...}, the id a string of digits")
        tokens.append((int(key), text))
    return tokens


def tokenizer_json_tokens(path):
    """[(id, text)] of tokenizer.json's "added_tokens": [{"id": id, "content": text, ...}]."""
    entries = read_json_object(path).get("added_tokens", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'added_tokens' must be a list, got a {type(entries).__name__}")
    tokens = []
    for entry in entries:
        if not (isinstance(entry, dict) and is_token_id(entry.get("id")) and isinstance(entry.get("content"), str)):
            raise ValueError(f"{path}: added token {entry!r:.100} is not {{\"id\": id >= 0, \"content\": text}}")
        tokens.append((entry["id"], entry["content"]))
    return tokens


def added_tokens_json(path):
    """[(id, text)] of added_tokens.json: {text: id}."""
    tokens = []
    for text, token_id in read_json_object(path).items():
        if not is_token_id(token_id):
            raise ValueError(f"{path}: token {text!r} has id {token_id!r}; ids must be integers >= 0")
        tokens.append((token_id, text))
    return tokens


def add_hf_added_tokens(tokenizer, added, folder):
    """Make HF's added tokens minigpt special tokens, keeping their ids (which must follow the vocabulary)."""
    ordinary = getattr(tokenizer, "token_to_id", None)
    for token_id, text in sorted(added.items()):
        if tokenizer.special_tokens.get(text) == token_id:
            continue  # already special (GPT-2's <|endoftext|> is in vocab.json)
        if ordinary is not None and ordinary.get(text) == token_id:
            continue  # a vocabulary token HF also marks as special ("<unk>" in some GPT-1 vocabularies)
        if isinstance(tokenizer, OpenAIGPTTokenizer) and text == "<unk>" and token_id == max(added):
            continue  # HF's placeholder for GPT-1's missing unknown token: the model has no row for it
        if token_id == tokenizer.vocab_size:
            tokenizer.add_special_tokens([text])
        else:
            raise ValueError(f"{folder}: added token {text!r} has id {token_id}, but minigpt's special tokens must "
                             f"follow the vocabulary without gaps (the next id is {tokenizer.vocab_size})")


def write_hf_tokenizer(tokenizer, folder, block_size):
    """Write vocab.json, merges.txt and tokenizer_config.json; False if the tokenizer has no HF form."""
    if isinstance(tokenizer, BPETokenizer) and tokenizer.pattern == GPT2_SPLIT_PATTERN:
        vocab, merges = gpt2_vocab_and_merges(tokenizer)
        tok_config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "errors": "replace"}
        # GPT2Tokenizer defaults its unk/bos/eos to <|endoftext|> and adds that token if it is missing
        eot = "<|endoftext|>" if tokenizer.eot_token is not None else None
        tok_config.update({"bos_token": eot, "eos_token": eot, "unk_token": eot})
    elif isinstance(tokenizer, OpenAIGPTTokenizer):
        vocab = {token: i for i, token in enumerate(tokenizer.vocab)}
        merges = [f"{left} {right}" for left, right in tokenizer.ranks]
        tok_config = {"tokenizer_class": "OpenAIGPTTokenizer", "unk_token": tokenizer.unk_token or "<unk>"}
    else:
        return False
    tok_config["model_max_length"] = block_size
    tok_config["added_tokens_decoder"] = {
        str(i): {"content": text, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                 "single_word": False} for text, i in tokenizer.special_tokens.items()}
    folder = Path(folder)
    atomic_write_bytes(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    atomic_write_bytes(folder / "merges.txt", ("#version: 0.2\n" + "".join(m + "\n" for m in merges)).encode())
    atomic_write_bytes(folder / "tokenizer_config.json", json.dumps(tok_config, indent=1).encode("utf-8"))
    return True


def gpt2_vocab_and_merges(tokenizer):
    """GPT-2's file form of a byte-level BPE: token strings made printable by bytes_to_unicode."""
    printable = bytes_to_unicode()
    names = ["".join(printable[b] for b in token) for token in tokenizer.vocab]
    vocab = {name: i for i, name in enumerate(names)}
    if len(vocab) != len(names):
        raise ValueError("this BPE tokenizer has two tokens with the same bytes (merged in different orders), "
                         "which vocab.json cannot express; HF's format needs one id per token string")
    for text, i in tokenizer.special_tokens.items():  # as in GPT-2's files: <|endoftext|> is the last entry
        if text in vocab:
            raise ValueError(f"special token {text!r} is also an ordinary token's string; vocab.json needs one id each")
        vocab[text] = i
    merges = [f"{names[a]} {names[b]}" for a, b in tokenizer.merges]
    return vocab, merges
