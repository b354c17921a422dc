"""Classifying texts with a trained model directory, and a small cache of loaded models."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TrainerError


@dataclass
class Prediction:
    label: str
    score: float
    top: list[tuple[str, float]]  # the best classes, highest first

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "top": [{"label": lab, "score": s} for lab, s in self.top]}


class Predictor:
    """A loaded model directory. Thread-safe for concurrent ``predict`` calls (inference only)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_length: int | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise TrainerError(f"{model_dir} is not a TinyTutor model directory (no config.json)")
        self.model_dir = model_dir
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False).to(self.device).eval()
        cfg = self.model.config
        self.labels = [cfg.id2label[i] for i in range(cfg.num_labels)]
        self.max_length = max_length or getattr(cfg, "tinytutor_max_length", None) or 128

    @torch.inference_mode()
    def predict(self, texts: list[str], top_k: int = 3) -> list[Prediction]:
        if not texts:
            return []
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        proba = torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu()
        k = min(top_k, len(self.labels))
        out = []
        for row in proba:
            scores, idx = row.topk(k)
            top = [(self.labels[i], round(float(s), 4)) for s, i in zip(scores.tolist(), idx.tolist(), strict=True)]
            out.append(Prediction(top[0][0], top[0][1], top))
        return out


class PredictorCache:
    """Keeps the last few loaded models; loading takes far longer than predicting."""

    def __init__(self, size: int = 4, device: str = "cpu"):
        self.size, self.device = size, device
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_dir: str | Path) -> Predictor:
        key = str(Path(model_dir).resolve())
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        predictor = Predictor(key, device=self.device)  # load outside the lock
        with self._lock:
            self._models[key] = predictor
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return predictor

    def forget(self, model_dir: str | Path) -> None:
        with self._lock:
            self._models.pop(str(Path(model_dir).resolve()), None)
