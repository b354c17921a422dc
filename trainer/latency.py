"""How long one message takes: through PyTorch (the report's fp32 column) and through the served path."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from .predict import Predictor


def torch_latency_ms(model, tokenizer, texts: list[str], max_length: int, n: int = 30) -> float:
    """Median milliseconds for PyTorch (fp32, on the CPU) to tokenise and classify one message."""
    import torch

    model = model.to("cpu").eval()
    sample = (texts * (n // max(1, len(texts)) + 1))[:n]
    times = []
    with torch.inference_mode():
        for i, t in enumerate(sample + sample[:3]):
            start = time.perf_counter()
            model(**tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt"))
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def message_latencies_ms(predictor: Predictor, texts: list[str], warmup: int = 3) -> list[float]:
    """Milliseconds to classify each text alone, after a few warm-up calls."""
    for t in texts[:warmup]:
        predictor.predict([t])
    times = []
    for t in texts:
        start = time.perf_counter()
        predictor.predict([t])
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure_latency(model_dir: Path, texts: list[str], n: int = 40) -> float:
    """Median milliseconds to classify one message through the same path ``tinytutor predict`` uses."""
    sample = (texts * (n // max(1, len(texts)) + 1))[:n]
    return statistics.median(message_latencies_ms(Predictor(model_dir), sample))
