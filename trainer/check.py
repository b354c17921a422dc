"""Checking a file without training: the data checks and the tokenizer's view of the texts.

Kept apart from the training pipeline so ``tinytutor check``, ``queue submit`` and the bot's
/check import no torch, scikit-learn or peft: only the data reader and the tokenizer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.spec import DataLimits, TrainSpec

from . import data as data_mod
from .errors import DataError, TrainerError
from .formats import read_table
from .lint import tokenizer_warnings
from .models import BaseModel, load_tokenizer, resolve_base


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


# -- what the sandbox runs (trainer.sandbox): JSON in, JSON out ------------------------------------

def check_upload(spec: dict, registry: dict | None = None, validation_path: str | None = None) -> dict:
    """A file's check as ``tinytutor check --json`` prints it (``info``) and, when given, the validation
    file's, read with the same columns (``validation``). Raises DataError. Runs in the sandbox."""
    train_spec = TrainSpec.from_dict(spec)
    ds, info = check_file(train_spec, registry)
    out = {"info": info, "validation": None}
    if validation_path:
        val = data_mod.load_dataset(validation_path, train_spec.limits, ds.text_column, ds.label_column,
                                    for_training=False)
        out["validation"] = {"rows": len(val), "labels": val.label_counts, "encoding": val.encoding,
                             "format": val.fmt, "warnings": [w.to_dict() for w in val.warnings]}
    return out


def read_texts(path: str, limits: dict, max_rows: int) -> dict:
    """A table to classify (``/predict_file``): its columns and rows as strings. Raises DataError, and
    TrainerError beyond ``max_rows``. Runs in the sandbox."""
    try:  # read no further than max_rows
        table = read_table(path, replace(DataLimits(**limits), max_rows=max(max_rows, 1)))
    except DataError as exc:
        if [p.code for p in exc.problems] != ["too_many_rows"]:
            raise
        raise TrainerError(f"The file has more than {max_rows:,} rows; at most {max_rows:,} can be classified at "
                           "once. Split it into smaller files.") from None
    return {"columns": table.columns, "rows": [[r.get(c, "") for c in table.columns] for r in table.rows]}
