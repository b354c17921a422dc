"""Data augmentation for distillation: perturbed copies of the training texts, no external data.

TinyBERT augments with GloVe and BERT-predicted word replacements; neither is available offline, so
each copy is the text with a few words dropped, swapped with a neighbour, or replaced by the
tokenizer's mask token. The copies carry no label: the teacher's soft targets are their only
supervision, which is what makes them safe even when a perturbation changes the meaning.
"""

from __future__ import annotations

import random


def perturb(text: str, rng: random.Random, mask_token: str = "[MASK]", rate: float = 0.15) -> str:
    """One perturbed copy of ``text``: each word is dropped, masked or swapped with probability ``rate``.

    A text of one word is masked at most; the result is never empty. Texts without spaces (Chinese,
    Japanese) are perturbed character by character.
    """
    spaced = " " in text.strip()
    words = text.split() if spaced else list(text.strip())
    if not words:
        return text
    out: list[str] = []
    i = 0
    while i < len(words):
        r = rng.random()
        if r < rate / 3 and len(words) > 1:
            i += 1  # drop
            continue
        if r < 2 * rate / 3:
            out.append(mask_token)
        elif r < rate and i + 1 < len(words):
            out.extend([words[i + 1], words[i]])  # swap with the next word
            i += 2
            continue
        else:
            out.append(words[i])
        i += 1
    if not out or all(w == mask_token for w in out) and len(words) > 1:
        out = list(words)
        out[rng.randrange(len(out))] = mask_token
    return (" " if spaced else "").join(out)


def augment(texts: list[str], copies: int, seed: int, mask_token: str = "[MASK]") -> list[str]:
    """``copies`` perturbed versions of every text (distinct from the original where possible), in order."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        for _ in range(copies):
            candidate = perturb(text, rng, mask_token)
            for _retry in range(3):
                if candidate != text:
                    break
                candidate = perturb(text, rng, mask_token)
            out.append(candidate)
    return out
