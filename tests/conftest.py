from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_mtl.data.format import synthesize


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "tiny"
    synthesize(root, 6, seed=11, workers=1, progress=False)
    return str(root)


@pytest.fixture(scope="session")
def dropped_dataset(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "dropped"
    synthesize(root, 8, seed=12, drop={"det": 0.5, "lane": 0.5, "depth": 0.5},
               workers=1, progress=False)
    return str(root)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
