"""Example datasets built from packages on disk (no downloads): chat lines by topic from chatterbot-corpus."""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

import yaml

DEFAULT_TOPICS = ("ai", "coding", "emotion", "psychology", "literature")


def chatterbot_rows(topics=DEFAULT_TOPICS, language: str = "english") -> list[tuple[str, str]]:
    """Every distinct line of the chosen topics' conversations, labelled with its topic."""
    root = importlib.resources.files("chatterbot_corpus") / "data" / language
    rows, seen = [], {}
    for topic in topics:
        doc = yaml.safe_load((root / f"{topic}.yml").read_text(encoding="utf-8"))
        for conversation in doc["conversations"]:
            for line in conversation:
                text = " ".join(str(line).split())
                if len(text) < 3 or text in seen:
                    if text in seen and seen[text] != topic:
                        rows = [r for r in rows if r[0] != text]  # a line in two topics teaches nothing
                    continue
                seen[text] = topic
                rows.append((text, topic))
    return rows


def write_chatterbot_csv(path: str | Path, topics=DEFAULT_TOPICS) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(chatterbot_rows(topics))
    return path
