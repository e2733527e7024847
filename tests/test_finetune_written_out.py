"""TaskModel.forward against the task formulas of Radford et al. (2018, sec. 3.2-3.3), written out here.

The fine-tuning tests check each head step on its own and every gradient by finite differences, but a
finite-difference check only proves that backward matches forward: a forward that reads the wrong
position, the wrong labels or the wrong LM targets (and backpropagates that same mistake) passes it.
Here each sequence is run through the transformer alone, unpadded, and the head's output and the three
losses are rebuilt from its hidden states:
    classification, entailment   logits_n = h(extract of sequence n) W + b
    similarity                   logits_n = (h(extract of a|b) + h(extract of b|a)) W + b;  regression: (N,)
    multiple choice              scores_nk = h(extract of candidate k of example n) w,  -inf where absent
    L_task = mean_n -log softmax(logits_n)[label_n]   (regression: mean (score_n - label_n)^2)
    L_LM   = mean over every real token after the first of -log softmax(h_{t-1} wte^T)[token_t]
    L      = L_task + λ L_LM
"""
import numpy as np
import pytest

import minigpt
from minigpt.finetune import TaskModel, add_task_tokens, collate, encode_example
from minigpt.tasks import Example

EXAMPLES = {
    "classification": [Example("classification", ("abcab",), 2), Example("classification", ("cc",), 0),
                       Example("classification", ("bca",), 1)],
    "entailment": [Example("entailment", ("abc", "ba"), 1), Example("entailment", ("a", "cab"), 0)],
    "similarity": [Example("similarity", ("ab", "cba"), 1), Example("similarity", ("c", "aab"), 0)],
    "regression": [Example("similarity", ("ab", "cba"), 3.5), Example("similarity", ("c", "a"), 0.25)],
    "multiple-choice": [Example("multiple-choice", ("abc", "a", "bb"), 1),
                        Example("multiple-choice", ("cab", "b", "ca", "a"), 2)],
}
AUX_LM = 0.7


def build(arch, kind):
    tokenizer = minigpt.CharTokenizer.train("abc")
    config = minigpt.GPTConfig(vocab_size=3, block_size=12, n_layer=2, n_head=2, n_embd=8, dropout=0.0, arch=arch)
    gpt = minigpt.GPT(config, seed=1, dtype="float64")
    tokens = add_task_tokens(gpt, tokenizer, seed=1)
    shape = "similarity" if kind == "regression" else kind
    n_out = 1 if kind in ("regression", "multiple-choice") else 3
    model = TaskModel(gpt, shape, n_out, regression=kind == "regression", aux_lm=AUX_LM,
                      first_new_id=tokens.first_new_id, seed=2)
    rng = np.random.default_rng(4)
    for p in model.params.values():  # away from the init: the head's output and the losses are not near-uniform
        p += rng.standard_normal(p.shape) * 0.3
    encoded = [encode_example(e, tokenizer, tokens, 12) for e in EXAMPLES[kind]]
    return model, encoded, tokens, collate(encoded, kind == "regression")


def log_softmax(z):
    z = np.asarray(z, np.float64)
    return z - np.log(np.exp(z - z.max()).sum()) - z.max()


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_task_outputs_and_losses_match_the_formulas(arch, kind):
    model, encoded, tokens, batch = build(arch, kind)
    W = model.params["head.weight"]
    b = model.params.get("head.bias", 0.0)
    wte = model.params["wte.weight"]
    per_example, lm_terms = [], []
    for example in encoded:
        states = []
        for seq in example.sequences:
            h = model.gpt.forward_hidden(np.array([seq]), train=False)[0]  # (L, C), alone, no padding
            assert seq[-1] == tokens.extract
            states.append(h[-1])  # the extract token is the last one
            lm_terms += [-log_softmax(h[t - 1] @ wte.T)[seq[t]] for t in range(1, len(seq))]
        if kind == "multiple-choice":
            per_example.append([s @ W[:, 0] for s in states])  # no bias: it cancels over the candidates
        elif kind in ("similarity", "regression"):
            out = (states[0] + states[1]) @ W + b
            per_example.append(out[0] if kind == "regression" else out)
        else:
            per_example.append(states[0] @ W + b)

    outputs, losses = model.forward(batch, train=False)
    labels = [e.label for e in encoded]
    if kind == "multiple-choice":
        K = max(len(s) for s in per_example)
        expected = np.array([s + [-np.inf] * (K - len(s)) for s in per_example])
        assert np.array_equal(np.isneginf(outputs), np.isneginf(expected))
        np.testing.assert_allclose(outputs[np.isfinite(expected)], expected[np.isfinite(expected)], rtol=1e-10)
        task = np.mean([-log_softmax(s)[y] for s, y in zip(per_example, labels)])  # over present candidates only
    elif kind == "regression":
        np.testing.assert_allclose(outputs, per_example, rtol=1e-10)
        task = np.mean((np.array(per_example) - np.array(labels)) ** 2)
    else:
        expected = np.array(per_example)
        np.testing.assert_allclose(outputs, expected, rtol=1e-10, atol=1e-12)
        task = np.mean([-log_softmax(z)[y] for z, y in zip(per_example, labels)])
    np.testing.assert_allclose(losses["task_loss"], task, rtol=1e-10)
    np.testing.assert_allclose(losses["lm_loss"], np.mean(lm_terms), rtol=1e-10)
    np.testing.assert_allclose(losses["loss"], task + AUX_LM * np.mean(lm_terms), rtol=1e-10)
    if kind != "regression":  # the prediction is the class or candidate of the largest formula output
        assert model.predict(outputs).tolist() == np.argmax(expected, axis=-1).tolist()
