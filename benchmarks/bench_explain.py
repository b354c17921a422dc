"""The tutor's explanations and its suspect-label list, measured on the 5-topic chatterbot example.

1. Faithfulness of "why this label" (trainer.explain, occlusion through the served model): for every
   correctly classified message of the run's test split of four words or more, delete its 3 words of
   largest weight, and separately 3 random words (seeded); how often the first lowers the predicted
   label's probability more than one random draw, and than the mean of ten.
2. Its speed: one chat message explained, p50 / p90 ms, idle and beside a training worker at nice 10 (as
   the queue runs them), 200 messages each, side by side in one run.
3. Suspect labels (trainer.insight on the frozen base): flip 5 % of the example's labels at random (3
   seeds); of the top 5 % of the list, how many are flipped rows (precision) and how many flipped rows it
   finds (recall), beside a random pick of the same size.

    .venv/bin/python benchmarks/bench_explain.py      # about 6 minutes on 2 cores
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.spec import TrainSpec  # noqa: E402
from trainer.examples import DEFAULT_TOPICS, chatterbot_rows, write_chatterbot_csv  # noqa: E402
from trainer.explain import explain_many  # noqa: E402
from trainer.pipeline import run_training  # noqa: E402
from trainer.predict import Predictor  # noqa: E402
from trainer.speed import TrainingLoad, chat_messages  # noqa: E402


def deleted(text: str, spans: list[tuple[int, int]], leave_out: set) -> str:
    return " ".join(text[a:b] for a, b in spans if (a, b) not in leave_out)


def faithfulness(predictor: Predictor, texts: list[str], labels: list[str], seed: int = 0,
                 draws: int = 10) -> tuple[int, int, int]:
    """For each correctly classified message of 4+ words: does deleting its 3 heaviest words lower the label's
    probability more than deleting 3 random words? Counted against one random draw per message (the target's
    wording; with 4 words the draw is the same 3 words one time in 4, a tie that counts as a loss), and
    against the mean of ``draws`` random draws (what "random words" remove on average). Returns (wins against
    one draw, wins against the mean, messages)."""
    rng = random.Random(seed)
    preds = predictor.predict(texts)
    chosen = [(t, p) for t, p, y in zip(texts, preds, labels, strict=True) if p.label == y and len(t.split()) >= 4]
    wins = wins_mean = 0
    for (text, pred), why in zip(chosen, explain_many(predictor, [t for t, _ in chosen]), strict=True):
        # the three words with the largest weights (top() names only those that clearly drive it)
        top = {(p.start, p.end) for p in sorted(why.parts, key=lambda p: -p.weight)[:3]}
        spans = [(p.start, p.end) for p in why.parts]
        randoms = [set(rng.sample(spans, 3)) for _ in range(draws)]
        after = predictor.predict([deleted(text, spans, top)] + [deleted(text, spans, r) for r in randoms],
                                  top_k=len(predictor.labels))
        p_top, *p_rand = [dict(a.top).get(pred.label, 0.0) for a in after]
        wins += p_top < p_rand[0]
        wins_mean += p_top < statistics.fmean(p_rand)
    return wins, wins_mean, len(chosen)


def latency(predictor: Predictor, texts: list[str]) -> tuple[float, float]:
    times = []
    for t in texts[:5]:
        explain_many(predictor, [t])
    for t in texts:
        started = time.perf_counter()
        explain_many(predictor, [t])
        times.append((time.perf_counter() - started) * 1000)
    q = statistics.quantiles(times, n=10)
    return statistics.median(times), q[8]


def suspects_found(work: Path) -> list[tuple]:
    import torch

    from trainer.batching import encode
    from trainer.classifier import load_classifier
    from trainer.insight import Examples, suspect_rows
    from trainer.models import load_tokenizer, resolve_base
    from trainer.probe import embeddings, fit_probe

    rows = chatterbot_rows(DEFAULT_TOPICS)
    labels = sorted({y for _, y in rows})
    base = resolve_base("minilm-l6")
    tok = load_tokenizer(base)
    model = load_classifier(base, dict(enumerate(labels)))
    texts = [t for t, _ in rows]
    x = embeddings(model, encode(tok, texts, 128, [0] * len(texts)), tok, torch.device("cpu"))
    out = []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        y = np.array([labels.index(lab) for _, lab in rows])
        flipped = rng.choice(len(y), size=round(0.05 * len(y)), replace=False)
        y[flipped] = (y[flipped] + rng.integers(1, len(labels), size=len(flipped))) % len(labels)
        C = fit_probe(x, list(y), x, list(y), len(labels), seed).C
        found = suspect_rows(Examples(x, y, list(range(len(y))), texts), labels, C, seed)
        k = len(flipped)
        top = {s["row"] for s in found[:k]}
        hits = len(top & set(flipped.tolist()))
        rand = set(rng.choice(len(y), size=k, replace=False).tolist())
        rand_hits = len(rand & set(flipped.tolist()))
        out.append((seed, k, len(found), hits / k, hits / max(1, len(top)), rand_hits / k))
    return out


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-explain-"))
    data = write_chatterbot_csv(work / "chat.csv")
    print("training the default model on the 5-topic example (2 epochs) ...", file=sys.stderr)
    result = run_training(TrainSpec(data_path=str(data), out_dir=str(work / "model"), epochs=2))
    predictor = Predictor(result.model_dir)
    m = result.metrics
    from trainer.data import load_dataset, split_dataset

    spec = TrainSpec(data_path=str(data))
    test = split_dataset(load_dataset(data, spec.limits), spec.limits, spec.seed).test  # the run's own test split
    wins, wins_mean, n = faithfulness(predictor, test.texts, test.labels)
    print(f"\n0. The suspect list and the learning curve took {m['insight_seconds']:.1f} s of the run's "
          f"{m['wall_seconds']:.0f} s ({m['insight_seconds'] / m['wall_seconds']:.1%}; target <= 15 %)")
    print(f"\n1. Faithfulness ({predictor.engine}, macro-F1 {m['macro_f1']:.3f} beside TF-IDF "
          f"{m['baseline_macro_f1']:.3f} and the frozen base + probe {m['probe_macro_f1']:.3f} on the same split; "
          f"every correctly classified test message of 4+ words)")
    print(f"   deleting the top-3 words lowered the label's probability more than 3 random words: {wins} of {n} "
          f"({wins / n:.1%}; target >= 80 %)")
    print(f"   ... more than 3 random words do on average (10 draws per message): {wins_mean} of {n} "
          f"({wins_mean / n:.1%})")

    texts = chat_messages(200)
    idle = latency(predictor, texts)
    with TrainingLoad(nice=10):
        loaded = latency(predictor, texts)
    print(f"\n2. One chat message explained ({len(texts)} messages, 1 thread)")
    print(f"   {'':<34} {'p50 ms':>8} {'p90 ms':>8}")
    print(f"   {'idle':<34} {idle[0]:>8.1f} {idle[1]:>8.1f}")
    print(f"   {'beside a training worker (nice 10)':<34} {loaded[0]:>8.1f} {loaded[1]:>8.1f}   target p50 < 50 ms")

    print("\n3. Suspect labels: 5 % of the labels flipped at random; the list's top 5 % (frozen base, out of fold)")
    print(f"   {'seed':>4} {'flipped':>8} {'listed':>7} {'recall':>7} {'precision':>9} {'random pick':>12}")
    for seed, k, listed, recall, precision, rand in suspects_found(work):
        print(f"   {seed:>4} {k:>8} {listed:>7} {recall:>7.1%} {precision:>9.1%} {rand:>12.1%}")
    print("   targets: recall >= 60 % at precision >= 60 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
