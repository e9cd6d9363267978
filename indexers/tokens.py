"""Sizing in the embedding model's own tokens.

all-MiniLM-L6-v2 reads at most 256 tokens (two of them [CLS] and [SEP]) and silently
drops the rest, so chunks are measured with the model's tokenizer, never in characters.
This uses the `tokenizers` library directly: no torch import is needed to chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

SPECIAL_TOKENS = 2  # [CLS] ... [SEP]
HEADER_RESERVE = 24  # room for the symbol header the model reads before the text


# ASCII as BERT's tokenizer reads it: control characters dropped, then words split at
# whitespace and at each punctuation character (every ASCII symbol is one).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PUNCTUATION = re.escape(
    "".join(map(chr, [*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)]))
)
_BERT_WORDS = re.compile(rf"[^\s{_PUNCTUATION}]+|[{_PUNCTUATION}]")
_WORDS_KEPT = 1 << 18  # distinct words whose counts are remembered


class WordPieceCounter:
    """Exact token counts of ASCII text for a BERT tokenizer (lowercasing BertNormalizer,
    BertPreTokenizer, WordPiece), as many as `Tokenizer.encode` gives, without encoding.

    Chunking counts the tokens of every line it reads; through `encode_batch` that was
    about a third of a first index's time, and words repeat, so each word's count is
    remembered. `count` is None for text it does not answer (not ASCII, or holding an
    added token such as `[CLS]`): ask the tokenizer.
    """

    def __init__(self, vocab: dict[str, int], prefix: str, max_chars: int, added: list[str]):
        self._vocab = vocab
        self._prefix = prefix
        self._max_chars = max_chars
        self._added = re.compile("|".join(re.escape(a.lower()) for a in added)) if added else None
        self._words: dict[str, int] = {}

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> WordPieceCounter | None:
        """A counter for `tokenizer`, or None when it is not one this counts exactly."""
        spec = json.loads(tokenizer.to_str())
        norm, pre, model = (
            spec.get("normalizer") or {},
            spec.get("pre_tokenizer") or {},
            spec["model"],
        )
        if not (
            norm.get("type") == "BertNormalizer"
            and norm.get("clean_text") is True
            and norm.get("lowercase") is True
            and pre.get("type") == "BertPreTokenizer"
            and model.get("type") == "WordPiece"
        ):
            return None
        added = [t["content"] for t in spec.get("added_tokens") or []]
        return cls(
            model["vocab"],
            model["continuing_subword_prefix"],
            model["max_input_chars_per_word"],
            added,
        )

    def count(self, text: str) -> int | None:
        if not text.isascii():
            return None
        lowered = _ASCII_CONTROL.sub("", text).lower()
        if self._added and self._added.search(lowered):
            return None
        found = _BERT_WORDS.findall(lowered)
        words = self._words
        try:
            return sum(map(words.__getitem__, found))
        except KeyError:  # a word not seen yet
            if len(words) >= _WORDS_KEPT:
                words.clear()
            for word in found:
                if word not in words:
                    words[word] = self._pieces(word)
            return sum(map(words.__getitem__, found))

    def _pieces(self, word: str) -> int:
        """WordPiece's greedy longest match: the pieces of `word`, or 1 ([UNK]) when a
        part of it is in no piece of the vocabulary or it is too long."""
        if len(word) > self._max_chars:
            return 1
        n = start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self._prefix + word[start:end]
                if piece in self._vocab:
                    break
                end -= 1
            if end == start:
                return 1
            n, start = n + 1, end
        return n


class TokenCounter:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tok = tokenizer
        self._fast = WordPieceCounter.of(tokenizer)
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
        n = self._fast.count(text) if self._fast else None
        return len(self._tok.encode(text, add_special_tokens=False).ids) if n is None else n

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Token counts, each distinct text tokenized once: a file's lines repeat (blank
        lines, closing braces), and a million one-line texts cost seconds in encode_batch."""
        known: dict[str, int | None] = dict.fromkeys(texts)
        if self._fast:
            known = {text: self._fast.count(text) for text in known}
        rest = [text for text, n in known.items() if n is None]
        if rest:
            encoded = self._tok.encode_batch(rest, add_special_tokens=False)
            known.update((text, len(e.ids)) for text, e in zip(rest, encoded, strict=True))
        return [known[t] or 0 for t in texts]

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
