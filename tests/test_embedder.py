"""Where the model runs: the device setting."""

from __future__ import annotations

import pytest

from contextd.embedder import resolve_device


def test_auto_takes_a_gpu_when_torch_sees_one_and_the_cpu_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_the_default_setting_loads_the_model_on_this_machines_device(app) -> None:
    import torch

    app.embedder.load()
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert app.embedder.device == want
    assert app.embedder.settings.device == "auto"
