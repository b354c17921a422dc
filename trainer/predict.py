"""Classifying texts with a trained model directory, and a small cache of loaded models."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .batching import mean_by_text, tokenize_windows
from .errors import TrainerError


@dataclass
class Prediction:
    label: str
    score: float
    top: list[tuple[str, float]]  # the best classes, highest first
    explanation: object | None = None  # a trainer.explain.Explanation, when one was asked for

    def to_dict(self) -> dict:
        out = {"label": self.label, "score": self.score, "top": [{"label": lab, "score": s} for lab, s in self.top]}
        if self.explanation is not None:  # the command-line contract: a list of {"word", "weight"}
            why = self.explanation.to_dict()
            out |= {"explanation": why["words"], "why": why["reading"], "top_words": why["top"],
                    "runner_up": why["runner_up"]}
        return out


ENGINES = ("auto", "onnxruntime", "torch")
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Predictor:
    """A loaded model directory. Thread-safe for concurrent ``predict`` calls (inference only).

    ``engine="auto"`` serves the ONNX file training left under ``onnx/`` (int8, or fp32 where int8
    lost accuracy) with ONNX Runtime on ``threads`` threads, and PyTorch for directories without
    one (models trained before ONNX serving, or where the export failed its parity check).
    ``engine="torch"`` always uses PyTorch (fp32), as ``tinytutor speed`` does for comparison;
    ``onnx_file`` serves another ONNX file (the benchmark's fp32 export).
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_length: int | None = None,
                 engine: str = "auto", threads: int = 1, batch_size: int = 32, onnx_file: Path | None = None):
        from transformers import AutoConfig, AutoTokenizer

        from .export import FP32_FILE, INT8_FILE

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise TrainerError(f"{model_dir} is not a TinyTutor model directory (no config.json)")
        if engine not in ENGINES:
            raise TrainerError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        self.model_dir = model_dir
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        cfg = AutoConfig.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
        self.labels = [cfg.id2label[i] for i in range(cfg.num_labels)]
        self.max_length = max_length or getattr(cfg, "tinytutor_max_length", None) or 128
        onnx_file = onnx_file or _served_file(model_dir, cfg)
        self.session = self.model = None
        if engine != "torch" and onnx_file is not None and self.device.type == "cpu":
            from .export import session

            self.session = session(onnx_file, threads)
            self._inputs = [i.name for i in self.session.get_inputs()]
            self.engine = "onnxruntime-int8" if onnx_file.name == INT8_FILE else "onnxruntime-fp32"
        elif engine == "onnxruntime":
            raise TrainerError(f"{model_dir} has no ONNX model to serve (onnx/{INT8_FILE} or onnx/{FP32_FILE})")
        else:
            from .classifier import load_model_dir

            self.model = load_model_dir(model_dir).to(self.device).eval()
            self.engine = "torch"

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits [n, labels] in the order of ``texts``; a text longer than ``max_length`` tokens is read in
        overlapping windows and gets the mean of their logits (:func:`trainer.batching.tokenize_windows`).

        Windows are tokenised once and grouped by exact token count, so no batch carries padding: on a
        CPU, padding a batch of chat lines to its longest member cost more than batching saved (64
        lines padded together: 285 msgs/s; one at a time: 1,770; equal lengths together: 2,180).
        """
        enc, owner = tokenize_windows(self.tokenizer, texts, self.max_length)
        names = self._inputs if self.session is not None else [n for n in enc if n in MODEL_INPUTS]
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(enc["input_ids"]):
            by_length.setdefault(len(ids), []).append(i)
        out = np.zeros((len(owner), len(self.labels)), dtype=np.float32)
        for idx in by_length.values():
            for start in range(0, len(idx), self.batch_size):
                part = idx[start:start + self.batch_size]
                out[part] = self._forward({n: np.array([enc[n][i] for i in part], dtype=np.int64) for n in names})
        return mean_by_text(out, owner, len(texts))

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self.session is not None:
            return self.session.run(["logits"], inputs)[0]
        with torch.inference_mode():
            feed = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
            return self.model(**feed).logits.float().cpu().numpy()

    def predict(self, texts: list[str], top_k: int = 3, explain: bool = False) -> list[Prediction]:
        """``explain``: each prediction also says which words drove it (``trainer.explain``: one more call
        of the model, with every word of every text left out in turn)."""
        if not texts:
            return []
        if explain:
            from dataclasses import replace

            from .explain import explain_many

            return [replace(p, explanation=e) for p, e in
                    zip(self.predict(texts, top_k), explain_many(self, texts), strict=True)]
        logits = self.logits(texts)
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        k = min(top_k, len(self.labels))
        out = []
        for row in proba:
            idx = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[i], round(float(row[i]), 4)) for i in idx]
            out.append(Prediction(top[0][0], top[0][1], top))
        return out


def _served_file(model_dir: Path, cfg) -> Path | None:
    """The ONNX file training chose to serve (``tinytutor_serving`` in config.json), else the int8 or
    fp32 file found; None when PyTorch should serve (no ONNX file, or training chose PyTorch)."""
    from .export import FP32_FILE, INT8_FILE, ONNX_DIR

    chosen = getattr(cfg, "tinytutor_serving", None)
    if chosen is not None:
        return model_dir / chosen if chosen.endswith(".onnx") and (model_dir / chosen).is_file() else None
    return next((model_dir / ONNX_DIR / f for f in (INT8_FILE, FP32_FILE) if (model_dir / ONNX_DIR / f).is_file()),
                None)


class PredictorCache:
    """Keeps the last few loaded models; loading takes far longer than predicting."""

    def __init__(self, size: int = 4, device: str = "cpu", threads: int = 1):
        self.size, self.device, self.threads = size, device, threads
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_dir: str | Path) -> Predictor:
        key = str(Path(model_dir).resolve())
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        predictor = Predictor(key, device=self.device, threads=self.threads)  # load outside the lock
        with self._lock:
            self._models[key] = predictor
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return predictor

    def forget(self, model_dir: str | Path) -> None:
        with self._lock:
            self._models.pop(str(Path(model_dir).resolve()), None)
