"""Float64 finite-difference checks of every hand-written backward of fine-tuning: the extract-token
gather, the similarity sum, the candidate grid and softmax, the MSE, the masked auxiliary LM loss, and
the whole TaskModel (head, new embedding rows, transformer) for each task shape and both architectures,
plus frozen mode's trainable gradients."""
import numpy as np
import pytest

import minigpt
from minigpt.finetune import TaskModel, add_task_tokens, collate, encode_example, trainable_parameters
from minigpt.finetune.heads import (choice_grid_backward, choice_grid_forward, gather_backward, gather_forward,
                                    pair_sum_backward, pair_sum_forward)
from minigpt.finetune.losses import (classification_loss_backward, classification_loss_forward, lm_loss_backward,
                                     lm_loss_forward, mse_backward, mse_forward)
from conftest import assert_gradient_matches
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.tasks import Example


def test_gather_picks_one_state_per_sequence_and_scatters_back(rng):
    h = rng.standard_normal((3, 5, 4))
    positions = np.array([4, 0, 2])
    z, cache = gather_forward(h, positions)
    assert np.array_equal(z, np.stack([h[0, 4], h[1, 0], h[2, 2]]))
    dz = rng.standard_normal(z.shape)
    dh = gather_backward(dz, cache)
    assert rel_error(dh, numerical_gradient(lambda: gather_forward(h, positions)[0], h, dz)) < 1e-9
    assert np.count_nonzero(dh.any(axis=-1)) == 3  # only the extract positions receive a gradient


def test_pair_sum_adds_the_two_orderings(rng):
    z = rng.standard_normal((6, 4))
    out, cache = pair_sum_forward(z)
    assert np.allclose(out, z[[0, 2, 4]] + z[[1, 3, 5]])
    dout = rng.standard_normal(out.shape)
    assert rel_error(pair_sum_backward(dout, cache), numerical_gradient(lambda: pair_sum_forward(z)[0], z, dout)) < 1e-9
    with pytest.raises(ValueError, match="two sequences"):
        pair_sum_forward(z[:5])


def test_candidate_softmax_over_a_ragged_grid(rng):
    # example 0 has 2 candidates, example 1 has 4, example 2 has 3
    example_of = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])
    choice_of = np.array([0, 1, 0, 1, 2, 3, 0, 1, 2])
    scores = rng.standard_normal(9)
    labels = np.array([1, 3, 0])
    grid, cache = choice_grid_forward(scores, example_of, choice_of, 3)
    assert grid.shape == (3, 4) and np.isneginf(grid[0, 2:]).all() and np.isneginf(grid[2, 3])
    loss, _ = classification_loss_forward(grid, labels)
    # independent formula: the mean over examples of -log softmax over that example's own candidates
    expected = np.mean([-(s[y] - np.log(np.exp(s).sum())) for s, y in
                        ((scores[0:2], 1), (scores[2:6], 3), (scores[6:9], 0))])
    assert np.isclose(loss, expected)

    def total_loss():
        return classification_loss_forward(choice_grid_forward(scores, example_of, choice_of, 3)[0], labels)[0]

    _, loss_cache = classification_loss_forward(grid, labels)
    dgrid = classification_loss_backward(1.0, loss_cache)
    assert np.all(dgrid[np.isneginf(grid)] == 0)  # absent candidates get no gradient, and no NaN
    dscores = choice_grid_backward(dgrid, cache)
    assert rel_error(dscores, numerical_gradient(total_loss, scores, 1.0)) < 1e-8


def test_mse_and_its_gradient(rng):
    pred, target = rng.standard_normal(5), rng.uniform(0, 5, 5)
    loss, cache = mse_forward(pred, target)
    assert np.isclose(loss, np.mean((pred - target) ** 2))
    assert rel_error(mse_backward(1.0, cache), numerical_gradient(lambda: mse_forward(pred, target)[0], pred, 1.0)) \
        < 1e-9


def test_masked_lm_loss_counts_only_real_targets(rng):
    h, wte = rng.standard_normal((2, 4, 3)), rng.standard_normal((7, 3))
    targets = np.array([[1, 2, -1, -1], [4, 5, 6, -1]])
    loss, cache = lm_loss_forward(h, wte, targets)
    logits = h @ wte.T
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    counted = [(s, t) for s in range(2) for t in range(4) if targets[s, t] >= 0]
    assert np.isclose(loss, -np.mean([logp[s, t, targets[s, t]] for s, t in counted]))
    dh, dwte = lm_loss_backward(1.0, cache)
    assert np.all(dh[targets < 0] == 0)  # padding passes no gradient back
    assert rel_error(dh, numerical_gradient(lambda: lm_loss_forward(h, wte, targets)[0], h, 1.0)) < 1e-8
    assert rel_error(dwte, numerical_gradient(lambda: lm_loss_forward(h, wte, targets)[0], wte, 1.0)) < 1e-8


EXAMPLES = {
    "classification": [Example("classification", ("abcab",), 2), Example("classification", ("cc",), 0)],
    "entailment": [Example("entailment", ("abc", "ba"), 1), Example("entailment", ("a", "cab"), 0)],
    "similarity": [Example("similarity", ("ab", "cba"), 1), Example("similarity", ("c", "a"), 0)],
    "regression": [Example("similarity", ("ab", "cba"), 3.5), Example("similarity", ("c", "a"), 0.25)],
    "multiple-choice": [Example("multiple-choice", ("abc", "a", "bb"), 1),
                        Example("multiple-choice", ("cab", "b", "ca", "a"), 2)],
}


def tiny_task_model(arch, kind, aux_lm=0.5, dropout=0.1, dtype="float64", backend="numpy", seed=0):
    """A 2-layer model, its tokenizer with the task tokens, and a batch of kind's examples."""
    tokenizer = minigpt.CharTokenizer.train("abc")
    config = minigpt.GPTConfig(vocab_size=3, block_size=10, n_layer=2, n_head=2, n_embd=8, dropout=dropout, arch=arch)
    gpt = minigpt.GPT(config, seed=seed, dtype=dtype, backend=backend)
    tokens = add_task_tokens(gpt, tokenizer, seed=seed)
    shape = "similarity" if kind == "regression" else kind
    n_out = 1 if kind in ("regression", "multiple-choice") else 3
    model = TaskModel(gpt, shape, n_out, regression=kind == "regression", aux_lm=aux_lm,
                      first_new_id=tokens.first_new_id, seed=seed)
    batch = collate([encode_example(e, tokenizer, tokens, 10) for e in EXAMPLES[kind]], kind == "regression")
    return model, batch


def loss_function(model, batch):
    state = model.gpt.dropout_rng.bit_generator.state

    def loss():
        model.gpt.dropout_rng.bit_generator.state = state  # the same dropout masks on every call
        return model.forward(batch, train=True)[1]["loss"]
    return loss


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_task_model_gradients_match_finite_differences(arch, kind):
    model, batch = tiny_task_model(arch, kind)
    rng = np.random.default_rng(1)
    for p in model.params.values():  # away from the symmetric init, so every path carries signal
        p += rng.standard_normal(p.shape) * 0.3
    loss = loss_function(model, batch)
    loss()
    model.zero_grad()
    model.backward()
    checked = ["head.weight", "wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias",
               "h.1.ln_2.weight"]
    # a bias shared by every candidate would cancel in the softmax over them: the multiple-choice head has none
    assert ("head.bias" in model.params) == (kind != "multiple-choice")
    for name in checked + (["head.bias"] if kind != "multiple-choice" else []):
        assert_gradient_matches(model.grads[name], loss, model.params[name], 1.0, 1e-7, name)


@pytest.mark.parametrize("aux_lm", [0.0, 0.5, 2.0])
def test_the_auxiliary_weight_scales_the_lm_loss(aux_lm):
    model, batch = tiny_task_model("gpt2", "entailment", aux_lm=aux_lm, dropout=0.0)
    _, losses = model.forward(batch, train=False)
    if aux_lm == 0:
        assert losses["lm_loss"] is None and losses["loss"] == losses["task_loss"]  # the LM head is skipped
    else:
        assert np.isclose(losses["loss"], losses["task_loss"] + aux_lm * losses["lm_loss"])
    _, with_lm = model.forward(batch, train=False, with_lm=True)
    assert with_lm["lm_loss"] > 0 and with_lm["task_loss"] == losses["task_loss"]
    model.zero_grad()
    model.backward()
    loss = loss_function(model, batch)
    assert_gradient_matches(model.grads["wte.weight"], loss, model.params["wte.weight"], 1.0, 1e-7, "wte.weight")


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_frozen_mode_gradients_are_those_of_the_new_rows_and_the_head(arch):
    model, batch = tiny_task_model(arch, "classification")
    trainable = trainable_parameters(model, "frozen")
    assert set(trainable.params) == {"wte.new_rows", "head.weight", "head.bias"}  # classification: a bias
    assert trainable.params["wte.new_rows"].shape == (3, 8)  # start, delimiter, extract
    assert np.shares_memory(trainable.params["wte.new_rows"], model.params["wte.weight"])  # a view, not a copy
    loss = loss_function(model, batch)
    loss()
    model.zero_grad()
    model.backward()
    for name, p in trainable.params.items():
        assert_gradient_matches(trainable.grads[name], loss, p, 1.0, 1e-7, name)
