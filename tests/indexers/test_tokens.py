from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from contextd.embedder import default_model_dir
from contextd.indexers import TokenCounter
from contextd.indexers.tokens import WordPieceCounter


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def encoded(tok: Tokenizer, texts: list[str]) -> list[int]:
    return [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]


def awkward_lines(n: int) -> list[str]:
    """Seeded ASCII lines heavy with what a tokenizer treats specially: punctuation,
    control characters, added tokens, words too long for WordPiece, rare pieces."""
    rng = random.Random(7)
    parts = [
        *"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        *"\t\r\x00\x01\x0b\x0c\x1b\x1f\x7f ",
        "[CLS]", "[cls]", "[MASK]", "[SEP", "[UNK]x", "a" * 101, "b" * 100, "zqxjkv",
        "HTTPAdapter", "snake_case_name", "0x7fff", "3.14e-10", "naïve", "東京", "\u00a0",
    ]  # fmt: skip
    words = ["def", "return", "self", "value", "parse", "xx", "Q", "9"]
    return ["".join(rng.choice(parts + words) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def test_the_default_model_is_counted_without_encoding(tokenizer: Tokenizer) -> None:
    fast = WordPieceCounter.of(tokenizer)
    assert fast is not None
    line = "def resolve_redirects(self, resp):"
    assert fast.count(line) == encoded(tokenizer, [line])[0] == 13
    assert fast.count("naïve") is None  # not ASCII: the tokenizer is asked
    assert fast.count('x = "[CLS]"') is None  # an added token is one token, whatever its text


def test_counts_are_the_tokenizers_own(tokenizer: Tokenizer) -> None:
    counter = TokenCounter.from_model_dir(default_model_dir())
    texts = awkward_lines(3000)
    assert counter._fast and sum(counter._fast.count(t) is not None for t in texts) > 800
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json/decoder.py", "email/_header_value_parser.py", "textwrap.py"):
        texts += (stdlib / name).read_text().split("\n")
    texts += [Path(__file__).read_text(), "line one\nline two\r\n\tthree"]  # many lines at once
    assert counter.counts(texts) == encoded(tokenizer, texts)
    assert [counter.count(t) for t in texts[:500]] == encoded(tokenizer, texts[:500])


def test_another_kind_of_tokenizer_is_asked_for_every_count() -> None:
    vocab = {"[UNK]": 0, "de": 1, "f": 2, "d": 3, "e": 4}
    bpe = Tokenizer(models.BPE(vocab, [("d", "e")], unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    assert WordPieceCounter.of(bpe) is None
    counter = TokenCounter(bpe, 256)
    texts = ["def def", "", "def"]
    assert counter.counts(texts) == encoded(bpe, texts) == [4, 0, 2]
