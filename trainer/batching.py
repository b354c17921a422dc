"""Dynamic padding with length-grouped batches.

Chat messages are short; padding every batch to ``max_length`` spends most of the compute on
[PAD]. Training batches come from transformers' ``LengthGroupedSampler`` (the sampler behind the
Trainer's ``group_by_length``) and ``DataCollatorWithPadding`` pads each batch only to its longest
member. Evaluation sorts by length and puts the predictions back in the original order.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler


def encode(tokenizer, texts: list[str], max_length: int, labels: list[int] | None = None) -> list[dict]:
    """Tokenise once, truncated but unpadded; each item is a dict the collator can pad."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    features = [{"input_ids": ids} for ids in enc["input_ids"]]
    if labels is not None:
        for f, y in zip(features, labels, strict=True):
            f["labels"] = y
    return features


def train_loader(features: list[dict], tokenizer, batch_size: int, seed: int,
                 pad_to_multiple_of: int | None = None) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = LengthGroupedSampler(batch_size, lengths=[len(f["input_ids"]) for f in features], generator=generator)
    return DataLoader(features, batch_size=batch_size, sampler=sampler,
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
