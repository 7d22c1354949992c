import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    # `slow` tests run only when a -m expression selects them (pytest -m slow).
    skip_slow = pytest.mark.skip(reason="slow: run with pytest -m slow")
    run_slow = "slow" in (config.getoption("markexpr") or "")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)  # noqa: NPY002  (legacy global seed, for code that uses it)
    torch.manual_seed(0)
