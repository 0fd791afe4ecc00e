"""Sharding and agreement for data-parallel runs, in one process: what each rank's batches are made of.

The runs themselves (torchrun, gloo, two processes) are tested end to end in tests/e2e/test_distributed.py.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from engine.data.loaders import LoaderBatches, TensorBatches
from engine.settings.config import SettingsError
from engine.training.distributed import Collectives, Group, from_environment, under_launcher


def tensor_batches(n: int, batch_size: int, shard=(0, 1), *, shuffle=True, seed=5) -> TensorBatches:
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return TensorBatches(x, torch.arange(n), batch_size, shuffle=shuffle, generator=generator, shard=shard)


def loader_batches(n: int, batch_size: int, shard=(0, 1), *, shuffle=True, seed=5) -> LoaderBatches:
    ds = TensorDataset(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return LoaderBatches(
        ds, batch_size, shuffle=shuffle, generator=generator, num_workers=0, pin_memory=False, shard=shard
    )


def epoch(batches) -> list[list[int]]:
    return [yb.tolist() for _, yb in batches]


@pytest.mark.parametrize("make", [tensor_batches, loader_batches])
def test_two_ranks_batches_together_are_one_process_batches_at_twice_the_size(make):
    one = make(96, 16)
    ranks = [make(96, 8, (r, 2)) for r in range(2)]
    for _ in range(3):  # three epochs: each a new order, drawn alike by every rank
        whole = epoch(one)
        parts = [epoch(r) for r in ranks]
        assert len(parts[0]) == len(parts[1]) == len(whole)  # every rank steps as often
        assert [sorted(a + b) for a, b in zip(*parts)] == [sorted(b) for b in whole]
        assert not set(sum(parts[0], [])) & set(sum(parts[1], []))  # no sample on both ranks
    assert ranks[0].num_samples == one.num_samples == 96


@pytest.mark.parametrize("make", [tensor_batches, loader_batches])
def test_an_uneven_training_split_drops_a_few_samples_each_epoch_so_that_ranks_step_alike(make):
    ranks = [make(101, 10, (r, 3)) for r in range(3)]
    assert {len(r) for r in ranks} == {4} and ranks[0].num_samples == 99
    first = [sum(epoch(r), []) for r in ranks]
    second = [sum(epoch(r), []) for r in ranks]
    assert [len(s) for s in first] == [33, 33, 33] and len(set(sum(first, []))) == 99
    assert set(sum(first, [])) != set(sum(second, []))  # a different few left out


@pytest.mark.parametrize("make", [tensor_batches, loader_batches])
def test_validation_counts_every_sample_once_with_no_padding(make):
    ranks = [make(101, 10, (r, 3), shuffle=False) for r in range(3)]
    seen = [sum(epoch(r), []) for r in ranks]
    assert sorted(sum(seen, [])) == list(range(101))
    assert [len(s) for s in seen] == [34, 34, 33]  # uneven: validation has no collective to hang
    assert ranks[2].num_samples == 101


def test_the_environment_torchrun_gives():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"}
    assert from_environment(env) == Group(3, 4, 1, 2)
    assert from_environment({}) == Group() and not Group().active and Group().is_main
    assert under_launcher(env) and not under_launcher({})
    with pytest.raises(SettingsError, match="RANK=4, WORLD_SIZE=4"):
        from_environment({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(SettingsError, match="not understood"):
        from_environment({"RANK": "x"})


def test_a_group_of_one_agrees_with_itself_without_a_process_group():
    c = Collectives(Group(), torch.device("cpu"))
    assert c.sums(torch.tensor(2.5), 3, torch.tensor(4)) == [2.5, 3.0, 4.0]
    assert c.any(True, False) == [True, False]
    assert c.from_main("runs/x") == "runs/x"
    c.barrier()
