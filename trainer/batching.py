"""Dynamic padding with length-grouped batches.

Chat messages are short; padding every batch to ``max_length`` spends most of the compute on
[PAD]. Each epoch, :func:`length_batches` shuffles the training set, cuts it into groups of
``GROUP`` batches, sorts each group by length and cuts it into batches, then shuffles all the
batches; ``DataCollatorWithPadding`` pads each batch only to its longest member.

How long the sorted runs are is a trade (``benchmarks/bench_trainer.py``, chatterbot example, 3
seeds, against padding every batch to 128 tokens: 98 s, macro-F1 0.889): groups of 4 batches
(what transformers' ``LengthGroupedSampler`` does on this data) left 54% padding, 35 s, 0.884; sorting the whole
epoch left 16% padding and took 20 s but scored 0.875, its batches of equally short, often ambiguous
lines pulling the model around; groups of 8 leave 35% padding, take 26-28 s and score 0.887-0.896.
Evaluation sorts by length and puts the predictions back in the original order.

Long texts are read in windows (:func:`tokenize_windows`): a text longer than ``max_length`` tokens
becomes overlapping windows of ``max_length`` tokens, each read like a short text, and the text's
logits are the mean of its windows' (:func:`mean_by_text`). The head is linear, so that is the head
applied to the mean of the windows' sentence embeddings. A chat message is one window, read exactly
as before. Measured on long documents built from the chat topics (``benchmarks/bench_long_texts.py``):
reading only the first ``max_length`` tokens, the first and last tokens, or every window.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from core.spec import (  # in spec: the torch-free data check states them too
    MAX_WINDOWS,
    WINDOW_OVERLAP,
)

TEXT = "text"  # a feature's key for the index of the text it reads (windows of one text share it)


def tokenize_windows(tokenizer, texts: list[str], max_length: int) -> tuple[dict[str, list], list[int]]:
    """The model inputs of every window of every text, unpadded, and for each window the index of its text.

    A text of at most ``max_length`` tokens is one window; a longer one is cut by the tokenizer into
    windows of ``max_length`` tokens (special tokens included) overlapping by ``WINDOW_OVERLAP``
    (transformers' ``return_overflowing_tokens`` with a stride, as question answering reads long
    contexts), at most ``MAX_WINDOWS`` of them spread evenly from the first to the last. A tokenizer
    without a fast (Rust) backend cannot cut windows: it reads the first ``max_length`` tokens.
    """
    if not texts:
        return {"input_ids": []}, []
    if not getattr(tokenizer, "is_fast", False):
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        return {k: list(v) for k, v in enc.items()}, list(range(len(texts)))
    room = max_length - tokenizer.num_special_tokens_to_add()
    stride = min(max(0, int(room * WINDOW_OVERLAP)), max(0, room - 1))
    enc = tokenizer(texts, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True)
    owner = list(enc.pop("overflow_to_sample_mapping"))
    keep = _spread(owner, MAX_WINDOWS)
    inputs = {k: [v[i] for i in keep] for k, v in enc.items()} if keep is not None else {k: list(v) for k, v in enc.items()}
    return inputs, [owner[i] for i in keep] if keep is not None else owner


def _spread(owner: list[int], most: int) -> list[int] | None:
    """Indices of the windows to keep when some text has more than ``most``: for that text, ``most``
    evenly spaced ones (its first and last among them); None when every text is within the limit."""
    counts = np.bincount(owner)
    if counts.max(initial=0) <= most:
        return None
    keep, start = [], 0
    for n in counts:
        picks = range(n) if n <= most else sorted(set(np.linspace(0, n - 1, most).round().astype(int).tolist()))
        keep += [start + i for i in picks]
        start += n
    return keep


def mean_by_text(rows, owner, n_texts: int):
    """Rows [windows, k] (numpy or torch) averaged over each text's windows -> [n_texts, k], in text order."""
    owner = np.asarray(owner, dtype=np.int64)
    if len(owner) == n_texts:  # one window a text, in order: nothing to average
        return rows
    array = rows.float().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=np.float32)
    out = np.zeros((n_texts, array.shape[1]), dtype=np.float32)
    np.add.at(out, owner, array)
    out /= np.maximum(np.bincount(owner, minlength=n_texts), 1)[:, None]
    return torch.from_numpy(out) if isinstance(rows, torch.Tensor) else out


def encode(tokenizer, texts: list[str], max_length: int, labels: list[int] | None = None) -> list[dict]:
    """Tokenise once, unpadded: one feature (a dict the collator can pad) per window of each text
    (:func:`tokenize_windows`), each carrying its text's index under ``TEXT`` and its text's label."""
    inputs, owner = tokenize_windows(tokenizer, texts, max_length)
    features = [{"input_ids": ids, TEXT: t} for ids, t in zip(inputs["input_ids"], owner, strict=True)]
    if labels is not None:
        for f in features:
            f["labels"] = labels[f[TEXT]]
    return features


def texts_of(features: list[dict]) -> list[int]:
    """The text index of every feature (features made without windows: one text each, in order)."""
    return [f.get(TEXT, i) for i, f in enumerate(features)]


def count_texts(features: list[dict]) -> int:
    owner = texts_of(features)
    return max(owner) + 1 if owner else 0


def text_labels(features: list[dict]) -> list[int]:
    """One label per text (its windows share it), in text order."""
    out: dict[int, int] = {}
    for t, f in zip(texts_of(features), features, strict=True):
        out.setdefault(t, f["labels"])
    return [out[t] for t in range(len(out))]


def first_windows(features: list[dict]) -> list[dict]:
    """Each text's first window only (what reading the head of a text sees)."""
    seen, out = set(), []
    for t, f in zip(texts_of(features), features, strict=True):
        if t not in seen:
            seen.add(t)
            out.append(f)
    return out


class _Collator(DataCollatorWithPadding):
    """transformers' padding collator, with the text index left out of the batch (it is no model input)."""

    def __call__(self, features):
        return super().__call__([{k: v for k, v in f.items() if k != TEXT} for f in features])


GROUP = 8  # batches per sorted group (see the module docstring)


def length_batches(lengths: list[int], batch_size: int, seed: int, group: int = GROUP) -> list[list[int]]:
    """Indices in batches of similar length, in random order: a seeded shuffle, groups of ``group``
    batches each sorted by length (ties in random order), cut into batches, the batches shuffled."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = group * batch_size
    batches = []
    for start in range(0, len(order), span):
        run = sorted(order[start:start + span], key=lambda i: lengths[i])  # stable: shuffled ties stay shuffled
        batches += [run[i:i + batch_size] for i in range(0, len(run), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_loader(features: list[dict], tokenizer, batch_size: int, seed: int,
                 pad_to_multiple_of: int | None = None) -> DataLoader:
    batches = length_batches([len(f["input_ids"]) for f in features], batch_size, seed)
    return DataLoader(features, batch_sampler=batches,
                      collate_fn=_Collator(tokenizer, pad_to_multiple_of=pad_to_multiple_of))


def eval_loader(features: list[dict], tokenizer, batch_size: int) -> tuple[DataLoader, list[int]]:
    """Batches of similar length, longest first; ``order[k]`` is the original index of the k-th item."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    loader = DataLoader([features[i] for i in order], batch_size=batch_size, shuffle=False,
                        collate_fn=_Collator(tokenizer))
    return loader, order


def unsort(values: list, order: list[int]) -> list:
    out = [None] * len(order)
    for k, i in enumerate(order):
        out[i] = values[k]
    return out
