"""GPT-1's three new tokens: start, delimiter and extract (Radford et al. 2018, sec. 3.3).

Fine-tuning adds them to a pre-trained model: as special tokens at the end of the tokenizer's
vocabulary and as new rows at the end of the token embedding (GPT.add_token_embeddings), so the
ids of both stay in step and every pre-trained token keeps its row. Their text uses tiktoken's
<|...|> form, like <|endoftext|>: a user's text that happens to contain "<|extract|>" is encoded
as ordinary characters and can never pose as the real token.
"""
from dataclasses import dataclass

START, DELIMITER, EXTRACT = "<|start|>", "<|delim|>", "<|extract|>"
TASK_TOKENS = (START, DELIMITER, EXTRACT)


@dataclass(frozen=True)
class TaskTokens:
    """The ids of the three tokens, and the first id that fine-tuning added to the model's embedding
    (every id from there on is a new row: what frozen mode trains)."""
    start: int
    delimiter: int
    extract: int
    first_new_id: int


def add_task_tokens(model, tokenizer, seed=0):
    """Add the start, delimiter and extract tokens to `tokenizer` and `model` (both changed in place).

    A tokenizer that already holds them (a fine-tuned checkpoint) keeps their ids and the model is not
    grown. The model's vocabulary must equal the tokenizer's before, so that the new rows and the new
    ids coincide. returns: TaskTokens.
    """
    if model.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"the model has {model.config.vocab_size} token embeddings but its tokenizer has "
                         f"{tokenizer.vocab_size} tokens; they must be the same model and tokenizer")
    already = [t for t in TASK_TOKENS if t in tokenizer.special_tokens]
    first_new_id = min(tokenizer.special_tokens[t] for t in already) if already else tokenizer.vocab_size
    before = tokenizer.vocab_size
    start, delimiter, extract = tokenizer.add_special_tokens(list(TASK_TOKENS))
    if tokenizer.vocab_size > before:
        model.add_token_embeddings(tokenizer.vocab_size - before, seed=seed)
    return TaskTokens(start, delimiter, extract, first_new_id)
