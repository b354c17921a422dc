"""Checks that need the base model's tokenizer: unknown characters, over-long texts, fragmentation."""

from __future__ import annotations

import unicodedata
from collections import Counter

from core.errors import plural
from core.spec import MAX_WINDOWS

from .data import Dataset
from .errors import Problem, problem

UNK_WARNING_SHARE = 0.05  # more than this share of characters unknown to the vocabulary is a warning
FRAGMENT_WARNING = 3.0  # more word pieces per word than this: the vocabulary barely knows the language


def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "other"
    for key, script in (("CJK", "Chinese/Japanese"), ("HIRAGANA", "Japanese"), ("KATAKANA", "Japanese"),
                        ("HANGUL", "Korean"), ("CYRILLIC", "Cyrillic"), ("ARABIC", "Arabic"),
                        ("HEBREW", "Hebrew"), ("DEVANAGARI", "Devanagari"), ("THAI", "Thai"),
                        ("GREEK", "Greek"), ("LATIN", "Latin")):
        if key in name:
            return script
    return "other"


LINT_BATCH = 2000  # texts tokenised at a time: ids and offsets of a whole 20 MB file at once took gigabytes


def _tokenized(tokenizer, texts: list[str], rows: list[int]):
    """(text, ids, offsets, row) for every text, tokenised in batches so memory stays flat."""
    for start in range(0, len(texts), LINT_BATCH):
        part = texts[start:start + LINT_BATCH]
        enc = tokenizer(part, add_special_tokens=True, truncation=False, return_offsets_mapping=True)
        yield from zip(part, enc["input_ids"], enc["offset_mapping"], rows[start:start + LINT_BATCH], strict=True)


def tokenizer_warnings(ds: Dataset, tokenizer, max_length: int, base_name: str) -> tuple[list[Problem], dict]:
    """Return warnings and the numbers behind them (``unk_char_share``, ``long_texts``...)."""
    unk_id = tokenizer.unk_token_id
    total_chars = unk_chars = 0
    unk_scripts: Counter[str] = Counter()
    long_rows, n_words, n_pieces = [], 0, 0
    for text, ids, offsets, row in _tokenized(tokenizer, ds.texts, ds.rows):
        total_chars += sum(1 for ch in text if not ch.isspace())
        for tid, (a, b) in zip(ids, offsets, strict=True):
            if tid == unk_id and b > a:
                span = text[a:b]
                unk_chars += sum(1 for ch in span if not ch.isspace())
                unk_scripts.update(_script(ch) for ch in span if not ch.isspace())
        if len(ids) > max_length:
            long_rows.append(row)
        words = text.split()
        n_words += len(words)
        n_pieces += len(ids) - 2
    stats = {
        "unk_char_share": unk_chars / max(1, total_chars),
        "long_texts": len(long_rows),
        "pieces_per_word": n_pieces / max(1, n_words),
    }
    warnings: list[Problem] = []
    share = stats["unk_char_share"]
    if share > UNK_WARNING_SHARE:
        script = unk_scripts.most_common(1)[0][0] if unk_scripts else "other"
        language = f"{script} text" if script not in ("other",) else "these characters"
        warnings.append(problem(
            "tokenizer_coverage",
            f"About {share:.0%} of the characters in your texts are unknown to the base model '{base_name}': "
            f"its vocabulary does not cover {language}, so the model sees them only as [UNK]",
            "Use a base model made for this language (configure a local one under [base_models] in config.toml "
            "and choose it as the base); expect poor results otherwise.",
            column=ds.text_column))
    elif stats["pieces_per_word"] > FRAGMENT_WARNING:
        warnings.append(problem(
            "tokenizer_fragmentation",
            f"The base model '{base_name}' cuts each word into {stats['pieces_per_word']:.1f} pieces on average: "
            "its vocabulary knows this language poorly",
            "A base model trained on this language will learn faster and better.",
            column=ds.text_column))
    if long_rows:
        warnings.append(problem(
            "long_texts", f"{plural(len(long_rows), 'text')} {'is' if len(long_rows) == 1 else 'are'} longer than "
                          f"max_length={max_length} tokens: each is read in overlapping windows of {max_length} tokens "
                          f"(up to {MAX_WINDOWS}) and its label decided by all of them",
            "Nothing to do; such texts take longer to train on and to classify. A larger max_length (up to 512) "
            "reads more context at once, and is slower.",
            column=ds.text_column, rows=long_rows))
    return warnings, stats
