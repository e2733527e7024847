"""--data-seed: runs of different seeds score one dev set (the ablations compare seeds on it)."""
import pytest

from minigpt.finetune.config import FineTuneConfig
from minigpt.finetune.train import FineTuneRun
from test_finetune_train import sentiment_task, tiny_checkpoint


def dev_sources(cfg):
    return [e.sequences for e in FineTuneRun(cfg).dev_set]


def test_data_seed_fixes_the_dev_subset_across_seeds(tmp_path):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, n_dev=40)
    base = dict(checkpoint=str(checkpoint), task="classification", data=str(task), max_eval=10, backend="numpy")
    fixed = [dev_sources(FineTuneConfig(**base, seed=s, data_seed=3)) for s in (0, 1)]
    assert fixed[0] == fixed[1]
    assert fixed[0] == dev_sources(FineTuneConfig(**base, seed=3))  # -1 (the default) means: the run's seed
    assert dev_sources(FineTuneConfig(**base, seed=0)) != dev_sources(FineTuneConfig(**base, seed=1))


def test_a_negative_data_seed_other_than_minus_one_is_an_error():
    with pytest.raises(ValueError, match="--data-seed must be >= 0"):
        FineTuneConfig(checkpoint="x", task="shakespeare-genre", data_seed=-2).check()
