"""CLIP byte-level BPE tokenizer, the same algorithm as `transformers.CLIPTokenizer`.

Kept dependency-free (plus `regex`) so that the host runner and the Kotlin port share one
small, readable definition: NFC, collapse whitespace, lowercase, split on CLIP's pattern,
map bytes to unicode, apply BPE merges by rank, add BOS/EOS, truncate and pad to 77.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from functools import cached_property, lru_cache
from pathlib import Path

import regex

WORD_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
WHITESPACE = regex.compile(r"\s+")
END_OF_WORD = "</w>"
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = regex.compile(f"({regex.escape(BOS_TOKEN)}|{regex.escape(EOS_TOKEN)})")  # matched as typed, like transformers


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


class ClipTokenizer:
    """Encodes prompts to fixed-length CLIP token ids."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int = 77,
                 pad_id: int | None = None) -> None:
        self.vocab = vocab
        self.merges = merges
        self.merge_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.max_length = max_length
        self.bos_id = vocab[BOS_TOKEN]
        self.eos_id = vocab[EOS_TOKEN]
        self.pad_id = self.eos_id if pad_id is None else pad_id
        self._byte_encoder = bytes_to_unicode()
        self._bpe_cache: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, vocab_file: Path, merges_file: Path, max_length: int = 77,
                   pad_id: int | None = None) -> "ClipTokenizer":
        vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        return cls(vocab, merges, max_length, pad_id)

    @cached_property
    def digest(self) -> str:
        """sha256 of everything that decides the ids: vocabulary, merges, length and padding."""
        text = json.dumps([self.vocab, self.merges, self.max_length, self.pad_id], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def cache_identity(self) -> str:
        return self.digest

    def bpe(self, word: str) -> list[str]:
        """Split one byte-encoded word into vocabulary symbols."""
        if word in self._bpe_cache:
            return self._bpe_cache[word]
        symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
            best = min(pairs, key=lambda pair: self.merge_ranks.get(pair, float("inf")))
            if best not in self.merge_ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._bpe_cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` without BOS/EOS, truncation or padding. Special-token text in a prompt is that token,
        and the text between such tokens is tokenized piece by piece, as `transformers.CLIPTokenizer` does."""
        ids: list[int] = []
        for index, piece in enumerate(SPECIAL_TOKENS.split(text)):
            if index % 2:
                ids.append(self.vocab[piece])
                continue
            normalized = WHITESPACE.sub(" ", unicodedata.normalize("NFC", piece)).strip().lower()
            for word in WORD_PATTERN.findall(normalized):
                encoded = "".join(self._byte_encoder[b] for b in word.encode("utf-8"))
                ids.extend(self.vocab[symbol] for symbol in self.bpe(encoded))
        return ids

    def __call__(self, text: str) -> list[int]:
        """BOS + ids + EOS, truncated and padded to `max_length`."""
        ids = [self.bos_id] + self.tokenize(text)[: self.max_length - 2] + [self.eos_id]
        return ids + [self.pad_id] * (self.max_length - len(ids))

    def save(self, folder: Path) -> tuple[Path, Path]:
        """Write vocab.json and merges.txt in the layout `transformers.CLIPTokenizer` reads."""
        folder.mkdir(parents=True, exist_ok=True)
        vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
        vocab_file.write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self.merges]
        merges_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return vocab_file, merges_file


# A few merges of common English fragments, ranked so that their order decides the result ("the" is
# t + he</w> before th + e</w>; "ing" is in + g</w> before i + ng</w>): presets on machines without a vocabulary
# still exercise BPE ranking, in Python and in the Kotlin core.
BUILTIN_MERGES = (("h", "e</w>"), ("t", "h"), ("t", "he</w>"), ("i", "n"), ("in", "g</w>"), ("n", "g</w>"),
                  ("a", "n"), ("an", "d</w>"), ("o", "f</w>"), ("e", "r</w>"), ("o", "n</w>"), ("r", "e"),
                  ("a", "t</w>"), ("th", "e"))


def builtin_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level CLIP vocabulary with a few merges, for presets on machines with no vocabulary files.

    Ids follow CLIP's layout (bytes, then bytes ending a word, then merged symbols, BOS 49406, EOS 49407), so a
    model built for it also accepts the real CLIP vocabulary.
    """
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + END_OF_WORD: len(symbols) + i for i, symbol in enumerate(symbols)})
    for first, second in BUILTIN_MERGES:
        vocab.setdefault(first + second, len(vocab))
    vocab[BOS_TOKEN] = 49406
    vocab[EOS_TOKEN] = 49407
    return vocab, list(BUILTIN_MERGES)
