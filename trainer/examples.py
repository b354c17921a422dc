"""Example datasets built from packages on disk (no downloads): chat lines by topic from chatterbot-corpus."""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

import yaml

from .data import normalise_text

DEFAULT_TOPICS = ("ai", "coding", "emotion", "psychology", "literature")


def english_topics() -> tuple[str, ...]:
    """Every English topic the installed chatterbot-corpus ships."""
    root = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    return tuple(sorted(p.name.removesuffix(".yml") for p in root.iterdir() if p.name.endswith(".yml")))


def chatterbot_rows(topics=DEFAULT_TOPICS, language: str = "english") -> list[tuple[str, str]]:
    """Every distinct line of the chosen topics' conversations, labelled with its topic.

    Lines are compared as the data check compares them (case and spacing ignored); a line found in
    two topics ("Why?" in emotion and "why?" in health) teaches nothing and is left out.
    """
    root = importlib.resources.files("chatterbot_corpus") / "data" / language
    rows, seen, clashes = [], {}, set()
    for topic in topics:
        doc = yaml.safe_load((root / f"{topic}.yml").read_text(encoding="utf-8"))
        for conversation in doc["conversations"]:
            for line in conversation:
                text = " ".join(str(line).split())
                key = normalise_text(text)
                if len(text) < 3:
                    continue
                if key in seen:
                    if seen[key] != topic:
                        clashes.add(key)
                    continue
                seen[key] = topic
                rows.append((text, topic))
    return [r for r in rows if normalise_text(r[0]) not in clashes]


def write_chatterbot_csv(path: str | Path, topics=DEFAULT_TOPICS) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(chatterbot_rows(topics))
    return path
