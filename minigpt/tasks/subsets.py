"""Seeded subsets of a task's splits: the examples that --max-train and --max-eval keep.

Fine-tuning and prompting draw the dev subset the same way from the same seed, so `minigpt finetune
--max-eval n` and `minigpt evaluate --max-eval n` score the same examples and their figures compare.
Each split has a random stream of its own, so the training draw never moves the dev one.
"""
import numpy as np

TRAIN_STREAM, DEV_STREAM = 5, 6  # beside a seed's other streams (fine-tuning shuffles with 7)


def subset(examples, n, seed, stream):
    """n of `examples` drawn without replacement by a seeded permutation (all of them when n is 0 or None, or
    covers them); the same seed gives nested subsets: the first 100 of 300 are the 100."""
    if not n or n >= len(examples):
        return list(examples)
    order = np.random.default_rng([seed, stream]).permutation(len(examples))
    return [examples[i] for i in order[:n]]


def train_subset(examples, n, seed):
    return subset(examples, n, seed, TRAIN_STREAM)


def dev_subset(examples, n, seed):
    return subset(examples, n, seed, DEV_STREAM)
