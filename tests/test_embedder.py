"""Where the model runs (the device setting) and how it batches."""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import pytest

from contextd.embedder import ONEDNN_CACHE_SHAPES, resolve_device


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


def test_a_query_is_embedded_on_one_thread_and_a_batch_on_all_of_them(
    app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query embeds faster on one torch thread off the main thread; a batch gets every
    thread even on a thread left with one (one that began inside a query's call)."""
    import threading

    import torch

    embedder = app.embedder
    embedder.load()
    everyone = torch.get_num_threads()
    seen: list[tuple[int, int]] = []
    encode = embedder._encode

    def spy(model: Any, texts: Any, stop: Any = None) -> Any:
        seen.append((len(texts), torch.get_num_threads()))
        return encode(model, texts, stop)

    monkeypatch.setattr(embedder, "_encode", spy)
    out: dict[str, Any] = {}

    def request_thread() -> None:
        torch.set_num_threads(1)
        out["batch"] = embedder.embed(["read the config file", "retry a connection"])
        out["query"] = embedder.embed(["read the config file"])
        out["left"] = torch.get_num_threads()

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    torch.set_num_threads(everyone)  # what the thread's first call set for later threads
    assert seen == [(2, everyone), (1, 1)]
    assert out["left"] == 1 and torch.get_num_threads() == everyone
    assert float(out["query"][0] @ out["batch"][0]) > 0.9999  # the same vector either way


def test_freed_memory_goes_back_to_the_os_once_the_heap_has_grown_by_the_slack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trim makes the next batch fault its pages in again, so it waits for the slack."""
    import contextd.embedder as embedder_module

    resident = [1000]
    trims: list[int] = []

    def trim(pad: int) -> int:
        trims.append(resident[0])
        resident[0] -= 300  # what the trim handed back
        return 1

    monkeypatch.setattr(embedder_module, "_malloc_trim", lambda: trim)
    monkeypatch.setattr(embedder_module, "resident_bytes", lambda: resident[0])
    trimmer = embedder_module._HeapTrimmer(slack=200)
    trimmer()  # the first call trims: nothing is known yet
    assert trims == [1000] and trimmer.floor == 700
    for grown in (100, 200):  # up to floor + slack: left alone
        resident[0] = 700 + grown
        trimmer()
    assert trims == [1000]
    resident[0] = 901
    trimmer()
    assert trims == [1000, 901] and trimmer.floor == 601

    monkeypatch.setattr(embedder_module, "resident_bytes", lambda: None)
    trimmer()  # memory unreadable: trim every time, as before
    assert len(trims) == 3


def test_batches_sorted_by_length_come_back_in_order_and_free_their_memory(
    isolated_home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts are batched longest first; each vector must still land on its own text, and
    the memory a batch's activations held is handed back before the next batch."""
    import contextd.embedder as embedder_module
    from contextd.embedder import SentenceTransformerEmbedder
    from contextd.settings import Settings

    texts = [
        "def parse_url(url): return urllib.parse.urlsplit(url)",
        "x",
        "The session object persists cookies across requests. " * 12,
        "class Retry: backoff_factor = 0.5",
        "SELECT path FROM files WHERE source = ?",
        "README\n\nInstall with pip and run the daemon.",
        "raise ValueError('bad header')",
    ]
    embedder = SentenceTransformerEmbedder(Settings(batch_size=3))
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    trims = []
    monkeypatch.setattr(embedder_module, "release_freed_memory", lambda: trims.append(1))
    batched = embedder.embed(texts)

    assert batched.shape == (len(texts), embedder.dim)
    cosines = np.sum(batched * alone, axis=1)
    assert cosines.min() > 0.99, cosines  # padding in bf16 moves vectors a hair, no more
    assert len(trims) == 3  # ceil(7 / 3) batches
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(ONEDNN_CACHE_SHAPES)


def test_batches_group_texts_by_length_in_tokens_not_characters(
    isolated_home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code and prose differ in characters per token: batches formed by characters pad a
    fifth of their tokens on real chunks. By tokens, no batch is padded to a longer text
    than a later batch holds, and each batch is padded only to its own longest."""
    from contextd.embedder import SentenceTransformerEmbedder
    from contextd.settings import Settings

    embedder = SentenceTransformerEmbedder(Settings(batch_size=2))
    model = embedder._load()
    texts = [
        "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 2,  # 104 chars, 52 words
        "HTTPAdapter" * 9,  # 99 characters, few tokens
        "ConnectionPool" * 7,
        "x = 1",
        "1 2 3 4 5 6 7 8 9 " * 5,  # 90 characters, 45 tokens
        "requests.sessions.Session.resolve_redirects()",
    ]
    widths: list[list[int]] = []  # per batch, each text's length in tokens
    forward = embedder._forward

    def spy(model: Any, features: dict[str, Any]) -> Any:
        mask = features["attention_mask"]
        widths.append(mask.sum(dim=1).tolist())
        assert mask.shape[1] == max(widths[-1])  # padded to its own longest, no further
        return forward(model, features)

    monkeypatch.setattr(embedder, "_forward", spy)
    embedder.embed(texts)

    def tokens(text: str) -> int:
        return len(model.tokenizer(text)["input_ids"])

    assert sorted(n for b in widths for n in b) == sorted(map(tokens, texts))
    for batch, later in itertools.pairwise(widths):
        assert min(batch) >= max(later), widths
