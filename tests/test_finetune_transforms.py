"""The input transformations and batches: the token sequences of each task shape, truncation at the
edges of the context, padding with its mask and LM targets, and the special tokens."""
import numpy as np
import pytest

import minigpt
from minigpt.finetune import TASK_TOKENS, add_task_tokens, collate, encode_example
from minigpt.finetune.transforms import fit_context_first, fit_symmetric
from minigpt.layers import IGNORE_INDEX
from minigpt.tasks import Example

LETTERS = "abcdefghijklmnopqrstuvwxyz "


def setup(block_size=16, n_embd=8, arch="gpt2"):
    tokenizer = minigpt.CharTokenizer.train(LETTERS)
    config = minigpt.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=1, n_head=2,
                               n_embd=n_embd, arch=arch)
    gpt = minigpt.GPT(config, dtype="float64")
    tokens = add_task_tokens(gpt, tokenizer)
    return gpt, tokenizer, tokens


def ids(tokenizer, text):
    return tuple(tokenizer.encode(text))


def test_the_task_tokens_follow_the_vocabulary_in_tokenizer_and_model():
    gpt, tokenizer, tokens = setup()
    assert (tokens.start, tokens.delimiter, tokens.extract) == (27, 28, 29) and tokens.first_new_id == 27
    assert gpt.config.vocab_size == tokenizer.vocab_size == 30
    assert tokenizer.decode([tokens.start, tokens.delimiter, tokens.extract]) == "".join(TASK_TOKENS)
    # adding them again (a fine-tuned tokenizer) changes nothing
    again = add_task_tokens(gpt, tokenizer)
    assert again == tokens and gpt.config.vocab_size == 30
    # user text that spells a special token is ordinary text, never the token itself
    bpe = minigpt.BPETokenizer.train("hello <|extract|> world " * 20, vocab_size=270)
    bpe_model = minigpt.GPT(minigpt.GPTConfig(vocab_size=bpe.vocab_size, block_size=8, n_layer=1, n_head=1,
                                              n_embd=4))
    bpe_tokens = add_task_tokens(bpe_model, bpe)
    assert bpe_tokens.extract not in bpe.encode("a <|extract|> b")


def test_a_model_and_tokenizer_of_different_sizes_are_refused():
    tokenizer = minigpt.CharTokenizer.train("abc")
    gpt = minigpt.GPT(minigpt.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=4))
    with pytest.raises(ValueError, match="5 token embeddings but its tokenizer has 3"):
        add_task_tokens(gpt, tokenizer)


def test_the_four_shapes_as_token_sequences():
    _, tok, t = setup(block_size=32)
    s, d, e = t.start, t.delimiter, t.extract
    cls = encode_example(Example("classification", ("good film",), 1), tok, t, 32)
    assert cls.sequences == ((s, *ids(tok, "good film"), e),) and cls.label == 1 and not cls.truncated
    ent = encode_example(Example("entailment", ("a cat", "an animal"), 0), tok, t, 32)
    assert ent.sequences == ((s, *ids(tok, "a cat"), d, *ids(tok, "an animal"), e),)
    sim = encode_example(Example("similarity", ("one", "two"), 1), tok, t, 32)
    assert sim.sequences == ((s, *ids(tok, "one"), d, *ids(tok, "two"), e),
                             (s, *ids(tok, "two"), d, *ids(tok, "one"), e))
    for k in (2, 3, 5):
        choices = tuple("xyzuv"[:k])
        mc = encode_example(Example("multiple-choice", ("the context", *choices), k - 1), tok, t, 32)
        assert mc.sequences == tuple((s, *ids(tok, "the context"), d, *ids(tok, c), e) for c in choices)


def test_truncation_keeps_the_answer_and_the_extract_token():
    _, tok, t = setup(block_size=12)
    s, d, e = t.start, t.delimiter, t.extract
    # classification: the text is cut from the left, the extract token stays last
    cls = encode_example(Example("classification", ("abcdefghijklmnop",), 0), tok, t, 12)
    assert cls.sequences == ((s, *ids(tok, "ghijklmnop"), e),) and cls.truncated
    # entailment: 9 ids of room; the premise is cut from the left, the hypothesis survives whole
    ent = encode_example(Example("entailment", ("abcdefghij", "xyz"), 0), tok, t, 12)
    assert ent.sequences == ((s, *ids(tok, "efghij"), d, *ids(tok, "xyz"), e),) and ent.truncated
    # a hypothesis that would leave the premise less than a quarter (2 ids) is itself cut, from the right
    long = encode_example(Example("entailment", ("abcdefghij", "uvwxyzuvwxyz"), 0), tok, t, 12)
    assert long.sequences == ((s, *ids(tok, "ij"), d, *ids(tok, "uvwxyzu"), e),)
    # multiple choice: each candidate is fitted alone, so a short answer sees more of the context
    mc = encode_example(Example("multiple-choice", ("abcdefghij", "x", "xyzw"), 1), tok, t, 12)
    assert mc.sequences == ((s, *ids(tok, "cdefghij"), d, *ids(tok, "x"), e),
                            (s, *ids(tok, "fghij"), d, *ids(tok, "xyzw"), e)) and mc.truncated
    # one candidate cut is enough to count the example as truncated
    some = encode_example(Example("multiple-choice", ("abcdef", "x", "xyzw"), 0), tok, t, 12)
    assert len(some.sequences[0]) == 1 + 6 + 1 + 1 + 1 and len(some.sequences[1]) == 12 and some.truncated
    # similarity: the longer text is cut from the right, both orderings hold the same tokens
    sim = encode_example(Example("similarity", ("abcdefghij", "xyz"), 1), tok, t, 12)
    assert sim.sequences == ((s, *ids(tok, "abcdef"), d, *ids(tok, "xyz"), e),
                             (s, *ids(tok, "xyz"), d, *ids(tok, "abcdef"), e))
    for example in (cls, ent, long, mc, sim):
        assert all(len(seq) <= 12 and seq[-1] == e for seq in example.sequences)


@pytest.mark.parametrize("n_first, n_second, budget", [(0, 5, 4), (5, 0, 4), (3, 3, 9), (20, 20, 9), (1, 30, 9),
                                                       (30, 1, 9), (7, 7, 1), (9, 2, 9)])
def test_fitting_always_fills_the_budget_and_never_overflows(n_first, n_second, budget):
    first, second = tuple(range(n_first)), tuple(range(100, 100 + n_second))
    a, b = fit_context_first(first, second, budget)
    assert len(a) + len(b) == min(budget, n_first + n_second)
    # the symmetric cut leaves one id of an odd budget unused when both texts want more than half of it
    a, b = fit_symmetric(first, second, budget)
    both_long = min(n_first, n_second) > budget // 2 and budget % 2
    assert len(a) + len(b) == min(budget, n_first + n_second) - both_long
    a, b = fit_context_first(first, second, budget)
    assert a == first[len(first) - len(a):] and b == second[:len(b)]  # the premise keeps its end, the answer its start
    a, b = fit_symmetric(first, second, budget)
    assert a == first[:len(a)] and b == second[:len(b)]



def test_the_symmetric_cut_does_not_depend_on_the_order():
    # GPT-1 adds a similarity pair's two orderings so that the pair has none: both must see the same text.
    # The second text kept the odd id of an odd budget, so long pairs saw different text swapped.
    for budget in range(1, 14):
        for n_first in range(0, 16):
            for n_second in range(0, 16):
                first, second = tuple(range(n_first)), tuple(range(100, 100 + n_second))
                a, b = fit_symmetric(first, second, budget)
                b_swapped, a_swapped = fit_symmetric(second, first, budget)
                assert (a, b) == (a_swapped, b_swapped) and len(a) + len(b) <= budget


def test_too_small_a_context_and_bad_text_are_clear_errors():
    _, tok, t = setup(block_size=16)
    with pytest.raises(ValueError, match="block_size 3 is too small for an entailment input"):
        encode_example(Example("entailment", ("a", "b"), 0), tok, t, 3)
    smallest = encode_example(Example("classification", ("abc",), 0), tok, t, 3)
    assert smallest.sequences == ((t.start, *ids(tok, "c"), t.extract),)
    with pytest.raises(ValueError, match=r"train.jsonl:7: CharTokenizer.encode: character 'Q'"):
        encode_example(Example("classification", ("aQ",), 0, "train.jsonl:7"), tok, t, 16)


def test_a_batch_pads_masks_and_points_at_the_extract_tokens():
    _, tok, t = setup(block_size=16)
    examples = [Example("multiple-choice", ("ab", "c", "de"), 1),
                Example("multiple-choice", ("abcd", "e", "f", "g"), 2)]
    batch = collate([encode_example(x, tok, t, 16) for x in examples])
    assert batch.idx.shape == (5, 8) and batch.n_examples == 2
    assert batch.example_of.tolist() == [0, 0, 1, 1, 1] and batch.choice_of.tolist() == [0, 1, 0, 1, 2]
    assert batch.n_choices.tolist() == [2, 3] and batch.labels.tolist() == [1, 2]
    assert batch.extract_pos.tolist() == [5, 6, 7, 7, 7]
    assert (batch.idx[np.arange(5), batch.extract_pos] == t.extract).all()
    assert batch.mask.sum(axis=1).tolist() == [6, 7, 8, 8, 8]
    # the LM targets are the next real token, and the ignore index over padding and after the extract token
    first = batch.lm_targets[0]
    assert first[:5].tolist() == batch.idx[0, 1:6].tolist() and (first[5:] == IGNORE_INDEX).all()
    assert ((batch.lm_targets[:, :-1] >= 0) == batch.mask[:, 1:]).all() and (batch.lm_targets[:, -1] < 0).all()
    regression = collate([encode_example(Example("similarity", ("a", "b"), 2.5), tok, t, 16)], regression=True)
    assert regression.labels.dtype == np.float64 and regression.idx.shape == (2, 5)
    with pytest.raises(ValueError, match="no examples"):
        collate([])


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_padding_never_changes_the_state_at_the_extract_token(arch):
    gpt, tok, t = setup(block_size=16, arch=arch)
    short = encode_example(Example("classification", ("ab",), 0), tok, t, 16)
    long = encode_example(Example("classification", ("abcdefghij",), 0), tok, t, 16)
    alone = collate([short])
    padded = collate([short, long])
    h_alone = gpt.forward_hidden(alone.idx, train=False)
    h_padded = gpt.forward_hidden(padded.idx, train=False)
    assert padded.idx.shape[1] > alone.idx.shape[1]
    assert np.allclose(h_alone[0, alone.extract_pos[0]], h_padded[0, padded.extract_pos[0]], rtol=1e-12, atol=1e-12)
