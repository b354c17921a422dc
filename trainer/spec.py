"""What a training run needs, as plain data: a spec saved beside the model and sent to workers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

STRATEGIES = ("alternate", "bottom", "top")
METHODS = ("full", "lora", "head", "distill")

# Defaults when --lr is not given. Small encoders like MiniLM fine-tune best near 2e-4 (measured on the
# chatterbot example: 5e-5 left it near chance after 4 epochs); a method that trains fewer weights
# wants a larger step. For a BERT-base-sized model pass --lr 3e-5.
DEFAULT_LR = {"full": 2e-4, "lora": 1e-3, "head": 2e-3, "distill": 2e-4}


@dataclass
class DataLimits:
    """Limits on an uploaded dataset ([data] in config.toml)."""

    max_rows: int = 50_000
    max_bytes: int = 20_000_000
    max_classes: int = 50
    min_examples_per_class: int = 5  # fewer is an error: a class needs examples in train, validation and test
    few_examples_warning: int = 20  # fewer is a warning: the report for that class will be noisy
    imbalance_warning_ratio: float = 10.0
    max_text_chars: int = 20_000  # longer texts are cut to this (the model reads only max_length tokens anyway)
    long_text_error_share: float = 0.5  # refuse when more than this share of texts is longer (the wrong column)
    conflict_error_share: float = 0.05  # texts under two labels: left out with a warning, refused above this share
    val_fraction: float = 0.1
    test_fraction: float = 0.2


@dataclass
class TrainSpec:
    """One training run. Everything here is JSON-serialisable so a queue can store and ship it."""

    data_path: str
    out_dir: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    validation_path: str | None = None
    base: str = "minilm-l6"
    layers: int | None = 3  # how many encoder layers to keep; None keeps all
    layer_list: list[int] | None = None  # an explicit choice of layers, overrides layers/strategy
    strategy: str = "alternate"
    method: str = "full"
    epochs: int = 6
    lr: float | None = None  # None: DEFAULT_LR[method]
    batch_size: int = 32
    max_length: int = 128
    seed: int = 42
    patience: int = 2  # epochs without a better validation macro-F1 before stopping
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # distillation (method "distill"): TinyBERT's task distillation from a fine-tuned teacher
    teacher: str | None = None  # a fine-tuned model directory with the same labels; None: fine-tune the base first
    teacher_epochs: int | None = None  # epochs for that teacher; None: the same as epochs
    augment: int = 0  # perturbed, teacher-labelled copies of each training text (distill only)
    temperature: float = 1.0
    soft_weight: float = 1.0  # soft cross-entropy on the teacher's logits
    hard_weight: float = 1.0  # cross-entropy on the true labels
    hidden_weight: float = 1.0  # MSE between mapped hidden states (embeddings included)
    attention_weight: float = 1.0  # MSE between mapped attention maps
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads for torch; 0 picks the cores this process may use
    limits: DataLimits = field(default_factory=DataLimits)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        for name in ("epochs", "batch_size", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise ValueError(f"teacher_epochs must be at least 1, got {self.teacher_epochs}")
        if not 0 <= self.augment <= 20:
            raise ValueError(f"augment must be between 0 and 20 copies per text, got {self.augment}")
        if not 0 < self.temperature <= 100:
            raise ValueError(f"temperature must be above 0 (and at most 100), got {self.temperature}")
        for name in ("soft_weight", "hard_weight", "hidden_weight", "attention_weight"):
            if not 0 <= getattr(self, name) <= 1000:
                raise ValueError(f"{name} must be between 0 and 1000, got {getattr(self, name)}")
        if self.method != "distill" and self.teacher:
            raise ValueError("a teacher is for the distill method; choose method distill")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"layers must be at least 1, got {self.layers}")
        if self.max_length > 512:
            raise ValueError(f"max_length must be at most 512 for BERT-family models, got {self.max_length}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ValueError(f"lr must be between 0 and 1, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> TrainSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        data = dict(data)
        if isinstance(data.get("limits"), dict):
            data["limits"] = DataLimits(**data["limits"])
        return cls(**data)
