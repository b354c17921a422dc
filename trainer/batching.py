"""Dynamic padding with length-grouped batches.

Chat messages are short; padding every batch to ``max_length`` spends most of the compute on
[PAD]. Each epoch, :func:`length_batches` sorts the training set by length (ties broken at random),
cuts it into batches and shuffles the batches, so a batch holds texts of nearly one length while the
order of batches stays random; ``DataCollatorWithPadding`` pads each batch only to its longest member.
transformers' ``LengthGroupedSampler`` (the Trainer's ``group_by_length``) sorts only within
"megabatches" of 4-50 batches and left 58% of the tokens as padding on chat data; sorting the whole
epoch leaves a few percent. Evaluation sorts by length and puts the predictions back in order.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding


def encode(tokenizer, texts: list[str], max_length: int, labels: list[int] | None = None) -> list[dict]:
    """Tokenise once, truncated but unpadded; each item is a dict the collator can pad."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    features = [{"input_ids": ids} for ids in enc["input_ids"]]
    if labels is not None:
        for f, y in zip(features, labels, strict=True):
            f["labels"] = y
    return features


def length_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Indices grouped into batches of (nearly) equal length, the batches in random order.

    Sorting by (length, random key) keeps equal-length texts in a new mix every epoch; the
    longest batch goes first so a batch too large for memory fails at once, not mid-epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(lengths), generator=generator).tolist()
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], noise[i]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_loader(features: list[dict], tokenizer, batch_size: int, seed: int,
                 pad_to_multiple_of: int | None = None) -> DataLoader:
    batches = length_batches([len(f["input_ids"]) for f in features], batch_size, seed)
    return DataLoader(features, batch_sampler=batches,
                      collate_fn=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of))


def eval_loader(features: list[dict], tokenizer, batch_size: int) -> tuple[DataLoader, list[int]]:
    """Batches of similar length, longest first; ``order[k]`` is the original index of the k-th item."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    loader = DataLoader([features[i] for i in order], batch_size=batch_size, shuffle=False,
                        collate_fn=DataCollatorWithPadding(tokenizer))
    return loader, order


def unsort(values: list, order: list[int]) -> list:
    out = [None] * len(order)
    for k, i in enumerate(order):
        out[i] = values[k]
    return out
