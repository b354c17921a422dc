"""What a training run needs, as plain data: a spec saved beside the model and sent to workers.

``TrainSpec`` and ``DataLimits`` are pydantic dataclasses: every value is checked when one is made
(types strictly, ranges, finite numbers, no unknown keys), so an impossible setting is refused where
it is written, in config.toml or a job's parameters, with the key named. ``SpecError`` carries that
refusal as one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, field, fields
from typing import Literal, get_args

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from .errors import SpecError

Strategy = Literal["alternate", "bottom", "top"]
Method = Literal["full", "lora", "head", "distill", "probe"]
Device = Literal["auto", "cpu", "cuda"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
METHODS: tuple[str, ...] = get_args(Method)
DEVICES: tuple[str, ...] = get_args(Device)

# Defaults when --lr is not given. With the head started from the probe (LP-FT), 5e-5, 1e-4 and 2e-4 end
# within a point of each other on the 21 chat topics (3 layers, 20 epochs: best test macro-F1 0.670,
# 0.671, 0.66); 1e-4 is the middle, and 2e-4 swung validation most. (With a random head, 2e-4 was needed:
# 5e-5 left it near chance.) A method that trains fewer weights wants a larger step; the probe method
# trains nothing by gradient. For a BERT-base-sized model pass --lr 3e-5.
DEFAULT_LR = {"full": 1e-4, "lora": 1e-3, "head": 2e-3, "distill": 1e-4, "probe": 1e-4}

# A text longer than max_length tokens is read in windows of max_length tokens (trainer.batching), each
# reading this share of the one before again, at most MAX_WINDOWS of them spread over the text (~1,000
# tokens at max_length 128, about 4,000 characters of English).
WINDOW_OVERLAP = 0.5
MAX_WINDOWS = 16

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def one_line(exc: ValidationError, where: str = "") -> str:
    """A pydantic refusal as one line per problem, each naming its key: ``epochs: Input should be ...``."""
    parts = []
    for e in exc.errors():
        key = ".".join(str(x) for x in e["loc"]) or "value"
        got = f" (got {e['input']!r})" if e["type"] not in ("missing", "value_error") else ""
        msg = e["msg"].removeprefix("Value error, ")
        if e["loc"]:
            parts.append(f"{where}{key}: {msg}{got}")
        else:
            parts.append(f"{where.rstrip('.')}: {msg}" if where else msg)
    return "; ".join(parts)


@dataclass(config=ConfigDict(extra="forbid", allow_inf_nan=False))  # strict per field: it is also given as a table
class DataLimits:
    """Limits on an uploaded dataset ([data] in config.toml)."""

    max_rows: int = Field(50_000, strict=True, ge=1, le=10_000_000)
    max_bytes: int = Field(20_000_000, strict=True, ge=1, le=2**31 - 1)
    max_classes: int = Field(50, strict=True, ge=2, le=10_000)
    min_examples_per_class: int = Field(5, strict=True, ge=2)  # fewer is an error: a class needs train, validation and test examples
    few_examples_warning: int = Field(20, strict=True, ge=0)  # fewer is a warning: the report for that class will be noisy
    imbalance_warning_ratio: float = Field(10.0, strict=True, gt=1)
    max_text_chars: int = Field(20_000, strict=True, ge=100)  # longer texts are cut to this (the model reads max_length tokens)
    long_text_error_share: float = Field(0.5, strict=True, gt=0, le=1)  # refuse when more texts than this share are longer
    conflict_error_share: float = Field(0.05, strict=True, ge=0, le=1)  # texts under two labels: left out, refused above this
    val_fraction: float = Field(0.1, strict=True, gt=0, lt=1)
    test_fraction: float = Field(0.2, strict=True, gt=0, lt=1)

    @model_validator(mode="after")
    def _leaves_training_data(self):
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction is {self.val_fraction + self.test_fraction:g}; together "
                             "they must stay below 0.9 so there is data left to train on")
        return self


@dataclass(config=STRICT)
class TrainSpec:
    """One training run. Everything here is JSON-serialisable so a queue can store and ship it."""

    data_path: str
    out_dir: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    validation_path: str | None = None
    base: str = "minilm-l6"
    layers: int | None = Field(3, ge=1, le=256)  # how many encoder layers to keep; None keeps all
    layer_list: list[int] | None = None  # an explicit choice of layers, overrides layers/strategy
    strategy: Strategy = "alternate"
    method: Method = "full"
    epochs: int | None = Field(None, ge=1, le=10_000)  # None: until validation stops improving (see max_epochs)
    max_epochs: int = Field(20, ge=1, le=10_000)  # the ceiling when epochs is None (a class's quota)
    time_budget_seconds: float | None = Field(None, gt=0)  # seconds of training for the whole run (teacher and
    # student together): no epoch starts that would end past them (the scheduler sets it from a job's limit)
    lr: float | None = Field(None, gt=0, lt=1)  # None: DEFAULT_LR[method]
    batch_size: int = Field(32, ge=1, le=4096)
    max_length: int = Field(128, ge=1, le=512)  # BERT-family position embeddings stop at 512
    seed: int = Field(42, ge=0, le=2**32 - 1)
    # percent of the training split trained on (stratified, seeded; validation and test unchanged): an
    # experiment over it (train_share=10,25,50,100) is the learning curve of the whole recipe
    train_share: int = Field(100, ge=1, le=100)
    patience: int = Field(3, ge=1)  # epochs without a better validation macro-F1 before stopping
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    lora_r: int = Field(8, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    # distillation (method "distill"): TinyBERT's task distillation from a fine-tuned teacher
    teacher: str | None = None  # a fine-tuned model directory with the same labels; None: fine-tune the base first
    teacher_epochs: int | None = Field(None, ge=1, le=10_000)  # epochs for that teacher; None: the same as epochs
    augment: int = Field(0, ge=0, le=20)  # perturbed, teacher-labelled copies of each training text (distill only)
    temperature: float = Field(1.0, gt=0, le=100)
    soft_weight: float = Field(1.0, ge=0, le=1000)  # soft cross-entropy on the teacher's logits
    hard_weight: float = Field(1.0, ge=0, le=1000)  # cross-entropy on the true labels
    hidden_weight: float = Field(1.0, ge=0, le=1000)  # MSE between mapped hidden states (embeddings included)
    attention_weight: float = Field(1.0, ge=0, le=1000)  # MSE between mapped attention maps
    device: Device = "auto"
    threads: int = Field(0, ge=0, le=1024)  # CPU threads for torch; 0 picks the cores this process may use
    limits: DataLimits = field(default_factory=DataLimits)

    @model_validator(mode="after")
    def _teacher_is_for_distill(self):
        if self.method != "distill" and self.teacher:
            raise ValueError("a teacher is for the distill method; choose method distill")
        return self

    @classmethod
    def make(cls, **values) -> TrainSpec:
        """A spec from untrusted values (config, a job's parameters): SpecError naming the key otherwise."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SpecError(one_line(exc)) from None

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> TrainSpec:
        """The spec ``to_dict`` wrote (a job's payload, a saved spec). SpecError for unknown or bad keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"unknown training settings: {', '.join(sorted(unknown))}")
        data = dict(data)
        try:
            if isinstance(data.get("limits"), dict):
                data["limits"] = DataLimits(**data["limits"])
            return cls(**data)
        except ValidationError as exc:
            raise SpecError(one_line(exc)) from None


# An experiment (``/experiment``, ``queue submit --sweep``) varies one of these; each value is checked
# again as the job's TrainSpec, so a range or a choice is refused with the key named.
SWEEPABLE: dict[str, type] = {"layers": int, "max_length": int, "method": str, "strategy": str, "train_share": int}
MAX_SWEEP_VALUES = 8


@dataclass(frozen=True)
class Sweep:
    """One setting and the values an experiment's jobs take, in order (``layers=1,2,3,6``)."""

    setting: str
    values: tuple

    @classmethod
    def parse(cls, text: str) -> Sweep:
        """``SETTING=V1,V2,...``: SpecError saying what is wrong and what would work."""
        setting, sep, rest = (text or "").partition("=")
        setting = setting.strip().replace("-", "_")
        if not sep or setting not in SWEEPABLE:
            raise SpecError(f"a sweep is SETTING=V1,V2,... with SETTING one of {', '.join(SWEEPABLE)} "
                            f"(got {text!r}), for example layers=1,2,3,6")
        return cls.of(setting, [v.strip() for v in rest.split(",") if v.strip()])

    @classmethod
    def of(cls, setting: str, values: list) -> Sweep:
        kind = SWEEPABLE.get(setting)
        if kind is None:
            raise SpecError(f"{setting} cannot be swept; choose one of {', '.join(SWEEPABLE)}")
        try:
            typed = tuple(kind(v) for v in values)
        except ValueError:
            raise SpecError(f"{setting} takes whole numbers (got {', '.join(map(str, values))})") from None
        if not 2 <= len(typed) <= MAX_SWEEP_VALUES:
            raise SpecError(f"a sweep of {setting} needs 2 to {MAX_SWEEP_VALUES} values (got {len(typed)})")
        if len(set(typed)) != len(typed):
            raise SpecError(f"a sweep of {setting} lists a value twice ({', '.join(map(str, typed))})")
        return cls(setting, typed)

    def label(self, value) -> str:
        """How one job of the sweep is told apart: ``layers=2``."""
        return f"{self.setting}={value}"

    def __str__(self) -> str:
        return f"{self.setting}={','.join(map(str, self.values))}"
