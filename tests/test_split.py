"""The module split: whole modules, faulty and healthy ones split separately, by seed."""

from __future__ import annotations

import pandas as pd

from src.training.data import split_modules


def site(n_faulty: int, n_healthy: int) -> pd.DataFrame:
    rows = []
    for kind, count in (("overcharge", n_faulty), ("none", n_healthy)):
        for m in range(count):
            rows += [{"module_id": f"{kind}-{m}", "fault_type": kind, "t": t} for t in range(3)]
    return pd.DataFrame(rows)


def test_every_module_lands_whole_in_one_split_and_faults_are_in_each():
    frame = site(n_faulty=10, n_healthy=20)
    masks = split_modules(frame, seed=3)
    assert sum(mask.astype(int) for mask in masks.values()).tolist() == [1] * len(frame)
    for name, mask in masks.items():
        chosen = frame[mask]
        assert chosen.groupby("module_id").size().eq(3).all(), name  # whole series
        faulty = chosen.loc[chosen["fault_type"] != "none", "module_id"].nunique()
        healthy = chosen.loc[chosen["fault_type"] == "none", "module_id"].nunique()
        # 20 % test, 20 % validation, the rest train: of 10 faulty and 20 healthy modules
        expected = {"test": (2, 4), "validation": (2, 4), "train": (6, 12)}[name]
        assert (faulty, healthy) == expected, name


def test_the_split_depends_on_the_seed_only():
    frame = site(n_faulty=10, n_healthy=20)
    first = split_modules(frame, seed=3)["test"]
    again = split_modules(frame, seed=3)["test"]
    other = split_modules(frame, seed=4)["test"]
    assert (first == again).all()
    assert not (first == other).all()
