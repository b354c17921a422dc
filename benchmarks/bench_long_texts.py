"""Long texts: how a text longer than max_length (128 tokens) is best read, measured.

Three ways of reading a long text, each scored on the same split:

- head: its first 126 tokens (how TinyTutor read every text before this benchmark);
- head + tail: its first 31 and last 95 tokens (Sun et al., 2019, "How to fine-tune BERT for text
  classification": a quarter head, the rest tail);
- windows: every window of 128 tokens overlapping by half, at most 16 spread over the text, the text's
  logits (or embedding) the mean of its windows' (``trainer.batching.tokenize_windows``: what
  TinyTutor does now).

Read by the frozen base and a linear probe (6 and 3 layers), and by the 3-layer model fine-tuned
(probe-started head, lr 1e-4): trained on each text's head, on its head + tail, or on all its windows
(each a training example with the text's label; 2 epochs there against 6 on one span a text, so that
every model takes about the same number of optimiser steps).

The long texts are built from what packages ship: each document is 14 to 28 chat lines from
chatterbot-corpus, about half from its topic and the rest from the 20 others, in random order (a
long thread that wanders off topic), 24 documents a topic to train on, 4 to validate and 10 to test
(21 topics, 504 / 84 / 210; median 210 tokens, the longest 1,490). Documents for the test split are
built from lines never used in the training or validation documents.

    .venv/bin/python benchmarks/bench_long_texts.py             # one seed: about 25 minutes on 2 cores
    .venv/bin/python benchmarks/bench_long_texts.py --seeds 3
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from core.settings import load_settings  # noqa: E402
from core.spec import TrainSpec  # noqa: E402
from trainer.batching import TEXT, tokenize_windows  # noqa: E402
from trainer.classifier import load_classifier  # noqa: E402
from trainer.examples import chatterbot_rows, english_topics  # noqa: E402
from trainer.models import load_tokenizer, resolve_base  # noqa: E402
from trainer.probe import embeddings, fit_probe, start_head_from  # noqa: E402
from trainer.progress import ignore  # noqa: E402
from trainer.pruning import prune_layers, select_layers  # noqa: E402
from trainer.train import fine_tune, predict_proba  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

SEEDS = (42, 7, 1234)
MAX_LENGTH = 128
READS = ("head", "head + tail", "windows")
TRAIN_EPOCHS = {"head": 6, "head + tail": 6, "windows": 2}  # about the same number of optimiser steps


def documents(seed: int, per_topic=(24, 4, 10), lines=(14, 28), on_topic=0.5):
    """(train, validation, test) lists of (document, topic); test documents use unseen lines only."""
    rng = random.Random(seed)
    by_topic: dict[str, list[str]] = {}
    for text, topic in chatterbot_rows(english_topics()):
        by_topic.setdefault(topic, []).append(text)
    topics = sorted(by_topic)
    seen, unseen = {}, {}
    for topic in topics:
        pool = by_topic[topic][:]
        rng.shuffle(pool)
        cut = int(len(pool) * 0.7)
        seen[topic], unseen[topic] = pool[:cut], pool[cut:]

    def make(pool, n):
        docs = []
        for topic in topics:
            others = [t for t in topics if t != topic]
            for _ in range(n):
                body = [rng.choice(pool[topic] if rng.random() < on_topic else pool[rng.choice(others)])
                        for _ in range(rng.randint(*lines))]
                docs.append((" ".join(body), topic))
        rng.shuffle(docs)
        return docs

    return make(seen, per_topic[0]), make(seen, per_topic[1]), make(unseen, per_topic[2]), topics


def features(tokenizer, docs, label2id, read: str) -> list[dict]:
    """One feature per span read (windows: several a document, sharing its index), labelled."""
    if read == "windows":
        inputs, owner = tokenize_windows(tokenizer, [d for d, _ in docs], MAX_LENGTH)
        return [{"input_ids": ids, TEXT: t, "labels": label2id[docs[t][1]]}
                for ids, t in zip(inputs["input_ids"], owner, strict=True)]
    room = MAX_LENGTH - tokenizer.num_special_tokens_to_add()
    out = []
    for i, (doc, topic) in enumerate(docs):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        if read == "head + tail" and len(ids) > room:
            ids = ids[:room // 4] + ids[len(ids) - (room - room // 4):]
        out.append({"input_ids": [tokenizer.cls_token_id] + ids[:room] + [tokenizer.sep_token_id], TEXT: i,
                    "labels": label2id[topic]})
    return out


def f1(y, pred) -> float:
    return float(f1_score(y, pred, average="macro", zero_division=0))


def cut(base, labels, layers: int):
    model = load_classifier(base, dict(enumerate(labels)))
    if layers < 6:
        prune_layers(model, select_layers(6, layers, "alternate", None), base.name, "alternate")
    return model


def run_seed(seed: int, base, tokenizer) -> dict[str, float]:
    train, val, test, labels = documents(seed)
    label2id = {t: i for i, t in enumerate(labels)}
    y = {name: [label2id[t] for _, t in docs] for name, docs in (("train", train), ("val", val), ("test", test))}
    cpu = torch.device("cpu")
    scores = {}
    for layers in (6, 3):
        model = cut(base, labels, layers)
        for read in READS:
            x = {name: embeddings(model, features(tokenizer, docs, label2id, read), tokenizer, cpu)
                 for name, docs in (("train", train), ("val", val), ("test", test))}
            probe = fit_probe(x["train"], y["train"], x["val"], y["val"], len(labels), seed)
            scores[f"frozen {layers} layers + probe | read {read}"] = f1(y["test"], probe.logits(x["test"]).argmax(1))
    for trained_on in READS:
        model = cut(base, labels, 3)
        heads = {name: features(tokenizer, docs, label2id, "head") for name, docs in (("train", train), ("val", val))}
        start_head_from(model, fit_probe(embeddings(model, heads["train"], tokenizer, cpu), y["train"],
                                         embeddings(model, heads["val"], tokenizer, cpu), y["val"], len(labels), seed))
        started = time.perf_counter()
        fine_tune(model, tokenizer, features(tokenizer, train, label2id, trained_on),
                  features(tokenizer, val, label2id, trained_on), TrainSpec(data_path="-", seed=seed,
                                                                            epochs=TRAIN_EPOCHS[trained_on]), cpu, ignore,
                  every_window=trained_on == "windows")
        scores[f"fine-tuned on {trained_on}: train s"] = time.perf_counter() - started
        for read in READS:
            proba = predict_proba(model, features(tokenizer, test, label2id, read), tokenizer, cpu)
            scores[f"3 layers fine-tuned on {trained_on} | read {read}"] = f1(y["test"], proba.argmax(-1).tolist())
    print(f"  seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if "train s" not in k), flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1, help="how many of the seeds 42, 7, 1234 to run")
    args = parser.parse_args()
    settings = load_settings()
    base = resolve_base(settings.training.base, settings.base_models)
    tokenizer = load_tokenizer(base)
    train, _, test, _ = documents(SEEDS[0])
    tokens = [len(tokenizer(d)["input_ids"]) for d, _ in test]
    print(f"long documents from chatterbot-corpus: {len(train)} train, {len(test)} test, median {int(np.median(tokens))} "
          f"tokens (longest {max(tokens)}); max_length {MAX_LENGTH}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    runs = [run_seed(seed, base, tokenizer) for seed in SEEDS[:args.seeds]]
    print(f"\n### Reading a long text: test macro-F1, mean of {len(runs)} seed(s)\n")
    print("| model | " + " | ".join(f"read {r}" for r in READS) + " |")
    print("|---|" + "---:|" * len(READS))
    for model in ["frozen 6 layers + probe", "frozen 3 layers + probe"] + \
                 [f"3 layers fine-tuned on {t}" for t in READS]:
        cells = [statistics.mean(r[f"{model} | read {read}"] for r in runs) for read in READS]
        best = max(cells)
        print(f"| {model} | " + " | ".join(f"**{c:.3f}**" if c == best else f"{c:.3f}" for c in cells) + " |")
    print("\ntraining seconds (3 layers): " + ", ".join(
        f"{t} {statistics.mean(r[f'fine-tuned on {t}: train s'] for r in runs):.0f}" for t in READS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
