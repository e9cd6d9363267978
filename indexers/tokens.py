"""Sizing in the embedding model's own tokens.

all-MiniLM-L6-v2 reads at most 256 tokens (two of them [CLS] and [SEP]) and silently
drops the rest, so chunks are measured with the model's tokenizer, never in characters.
This uses the `tokenizers` library directly: no torch import is needed to chunk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

SPECIAL_TOKENS = 2  # [CLS] ... [SEP]
HEADER_RESERVE = 24  # room for the symbol header the model reads before the text


class TokenCounter:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tok = tokenizer
        self.max_tokens = max_tokens

    @classmethod
    def from_model_dir(cls, model_dir: Path, max_tokens: int | None = None) -> TokenCounter:
        if max_tokens is None:
            config = model_dir / "sentence_bert_config.json"
            max_tokens = int(json.loads(config.read_text())["max_seq_length"])
        return cls(Tokenizer.from_file(str(model_dir / "tokenizer.json")), max_tokens)

    @property
    def content_limit(self) -> int:
        """Tokens an embedded text may have, special tokens excluded."""
        return self.max_tokens - SPECIAL_TOKENS

    @property
    def body_budget(self) -> int:
        """Tokens a chunk's own text may have, leaving room for its header."""
        return self.content_limit - HEADER_RESERVE

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Token counts, each distinct text tokenized once: a file's lines repeat (blank
        lines, closing braces), and a million one-line texts cost seconds in encode_batch."""
        if not texts:
            return []
        distinct = list(dict.fromkeys(texts))
        encoded = self._tok.encode_batch(distinct, add_special_tokens=False)
        known = {text: len(e.ids) for text, e in zip(distinct, encoded, strict=True)}
        return [known[t] for t in texts]

    def split(self, text: str, budget: int) -> list[str]:
        """Cut one overlong text into consecutive pieces of at most `budget` tokens."""
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= budget:
            return [text]
        pieces: list[str] = []
        start_char = 0
        for i in range(budget, len(offsets), budget):
            cut = offsets[i][0]
            pieces.append(text[start_char:cut])
            start_char = cut
        pieces.append(text[start_char:])
        return [p for p in pieces if p.strip()]
