"""Which way of running the model is fastest on this CPU, and are its vectors the same?

    python bench/backends.py --home DATA_DIR [--sample 768] [--rounds 3]

DATA_DIR is a data dir that indexed a tree (e.g. `bench/index_cold.py --keep DIR`, whose
source is named `bench`); a sample of its own chunk texts is embedded by each backend:

- torch float32 (the reference) and bfloat16 (what contextd uses where the CPU has native
  bf16), through sentence-transformers' `encode`;
- torch int8: `torch.ao.quantization.quantize_dynamic` on the Linear layers;
- ONNX Runtime float32 and int8 (dynamic quantization of that export), when `onnxruntime`
  and `onnx` are installed (`pip install onnxruntime onnx`; not contextd dependencies). The
  export is made here from the same local model files, batches sorted by length.

Rounds are interleaved (a change in machine load is shared); each backend's figure is the
median of its rounds. Vectors are compared with float32's: the lowest and mean cosine. The
issue's rule: another backend is offered only if it is faster than the default at equal
retrieval quality; this bench answers the first half.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from index_cold import sample_texts  # noqa: E402

from contextd.settings import Settings  # noqa: E402

Encode = Callable[[list[str]], np.ndarray]


def torch_backends(home: Path, batch: int) -> dict[str, Encode]:
    import torch

    from contextd.embedder import SentenceTransformerEmbedder

    def load() -> object:
        return SentenceTransformerEmbedder(Settings(home=home, dtype="float32"))._load()

    f32, bf16 = load(), load()
    bf16.to(torch.bfloat16)  # type: ignore[attr-defined]
    int8 = torch.ao.quantization.quantize_dynamic(load(), {torch.nn.Linear}, dtype=torch.qint8)

    def encoder(model: object) -> Encode:
        def encode(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(
                    model.encode(texts, batch_size=batch, normalize_embeddings=True),  # type: ignore[attr-defined]
                    dtype=np.float32,
                )

        return encode

    return {
        "torch float32": encoder(f32),
        "torch bfloat16": encoder(bf16),
        "torch int8": encoder(int8),
    }


def export(module: object, probe: dict, path: Path) -> None:
    import torch

    torch.onnx.export(
        module,  # type: ignore[arg-type]
        (probe["input_ids"], probe["attention_mask"]),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask")},
        opset_version=17,
        dynamo=False,
    )


def onnx_backends(home: Path, batch: int, tmp: Path) -> dict[str, Encode]:
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("onnxruntime not installed: no ONNX rows (pip install onnxruntime onnx)")
        return {}
    import torch

    from contextd.embedder import SentenceTransformerEmbedder

    st = SentenceTransformerEmbedder(Settings(home=home, dtype="float32"))._load()
    tokenizer, bert = st.tokenizer, st[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert  # a submodule: its weights export as weights

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    probe = tokenizer(["an example", "another one"], padding=True, return_tensors="pt")
    f32, int8 = tmp / "model.onnx", tmp / "model-int8.onnx"
    with torch.no_grad():
        export(Pooled(), probe, f32)
    quantize_dynamic(str(f32), str(int8), weight_type=QuantType.QInt8)

    def encoder(path: Path) -> Encode:
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        limit = st.max_seq_length

        def encode(texts: list[str]) -> np.ndarray:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            out = np.zeros((len(texts), bert.config.hidden_size), dtype=np.float32)
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                x = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=limit,
                    return_tensors="np",
                )
                feed = {k: x[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
                out[idx] = session.run(None, feed)[0]
            return out

        return encode

    return {"onnx float32": encoder(f32), "onnx int8": encoder(int8)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, required=True, help="a data dir with a source 'bench'")
    p.add_argument("--sample", type=int, default=768)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sample_texts(args.home, args.sample)
    batch = Settings(home=args.home).batch_size
    with tempfile.TemporaryDirectory(prefix="contextd-backends-") as tmp:
        backends = torch_backends(args.home, batch) | onnx_backends(args.home, batch, Path(tmp))
        for encode in backends.values():
            encode(texts[:batch])  # warm up
        rates: dict[str, list[float]] = {name: [] for name in backends}
        vectors: dict[str, np.ndarray] = {}
        for r in range(args.rounds):
            for name, encode in backends.items():
                started = time.perf_counter()
                vectors[name] = encode(texts)
                rates[name].append(len(texts) / (time.perf_counter() - started))
                print(f"round {r + 1}: {name} {rates[name][-1]:.1f} chunks/s", flush=True)
    reference = vectors["torch float32"]
    base = statistics.median(rates["torch float32"])
    parts = []
    for name in backends:
        cos = np.sum(vectors[name] * reference, axis=1)
        rate = statistics.median(rates[name])
        parts.append(
            f"{name} {rate:.1f} chunks/s ({rate / base:.2f}x float32, cosine min "
            f"{cos.min():.4f} mean {cos.mean():.4f})"
        )
    print(f"summary: {len(texts)} chunks, median of {args.rounds}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
