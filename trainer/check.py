"""Checking a file without training: the data checks and the tokenizer's view of the texts.

Kept apart from the training pipeline so ``tinytutor check``, ``queue submit`` and the bot's
/check import no torch, scikit-learn or peft: only the data reader and the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from . import data as data_mod
from .lint import tokenizer_warnings
from .models import BaseModel, load_tokenizer, resolve_base
from .spec import TrainSpec


class FileTokenizer:
    """A base model's tokenizer.json through the ``tokenizers`` library, called like a transformers
    tokenizer for what the lint needs (ids and offsets, no truncation). Loading it takes milliseconds
    and imports neither torch nor transformers."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.unk_token_id = self._tok.token_to_id("[UNK]")
        if self.unk_token_id is None:
            self.unk_token_id = self._tok.token_to_id("<unk>")

    def __call__(self, texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True):
        enc = self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in enc], "offset_mapping": [e.offsets for e in enc]}


def check_tokenizer(base: BaseModel):
    """The lightest tokenizer that reads texts as training will: tokenizer.json when the base has one."""
    if base.local and (Path(base.source) / "tokenizer.json").is_file():
        return FileTokenizer(Path(base.source) / "tokenizer.json")
    return load_tokenizer(base)


def check_file(spec: TrainSpec, registry: dict[str, str] | None = None, base: BaseModel | None = None,
               tokenizer=None) -> tuple[data_mod.Dataset, dict]:
    """Validation and lint only: the dataset and what ``tinytutor check --json`` prints. Raises DataError."""
    ds = data_mod.load_dataset(spec.data_path, spec.limits, spec.text_column, spec.label_column)
    base = base or resolve_base(spec.base, registry)
    tokenizer = tokenizer or check_tokenizer(base)
    tok_warnings, stats = tokenizer_warnings(ds, tokenizer, spec.max_length, base.name)
    ds.warnings.extend(tok_warnings)
    info = {
        "rows": len(ds), "labels": ds.label_counts, "encoding": ds.encoding, "format": ds.fmt,
        "text_column": ds.text_column, "label_column": ds.label_column,
        "warnings": [w.to_dict() for w in ds.warnings], "errors": [],
        "tokenizer": {k: round(v, 4) for k, v in stats.items()}, "base_model": base.name,
    }
    return ds, info
