"""Progress reports from a training run: one small record, sent to whatever callback the caller gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Progress:
    stage: str  # checking, loading, teacher (distillation's teacher), training, evaluating, saving, exporting, done
    epoch: int = 0
    epochs: int = 0
    step: int = 0  # steps done in all epochs
    steps: int = 0  # steps planned in all epochs
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.step / self.steps if self.steps else 0.0

    @property
    def training(self) -> bool:
        """In a stage that reports epochs and steps (the model, or distillation's teacher), with steps planned."""
        return self.stage in TRAINING_STAGES and self.steps > 0

    @property
    def epoch_label(self) -> str:
        """"epoch 2/6", or "teacher epoch 2/4" while distillation's teacher is fine-tuned."""
        return f"{'teacher ' if self.stage == 'teacher' else ''}epoch {self.epoch}/{self.epochs}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Progress:
        """A stored progress record (a job's ``progress`` column: keys it does not know are left out);
        nothing stored yet is the "starting" stage."""
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in (d or {})}
        return cls(**({"stage": "starting"} | known))


ProgressFn = Callable[[Progress], None]
TRAINING_STAGES = ("teacher", "training")  # stages that report epochs and steps


def approx_duration(seconds: float) -> str:
    """A wait in words for people who read it now ("~40 s", "~12 min", "~1.5 h"): the terminal and the
    dashboard (Discord gets relative timestamps, which its clients keep true)."""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def ignore(_: Progress) -> None:
    return None


class Throttle:
    """Pass a progress record on at most every ``seconds``, plus every stage change."""

    def __init__(self, callback: ProgressFn, seconds: float = 1.0, clock=time.monotonic):
        self.callback, self.seconds, self.clock = callback, seconds, clock
        self._last = float("-inf")
        self._stage = None

    def __call__(self, p: Progress) -> None:
        now = self.clock()
        if p.stage != self._stage or now - self._last >= self.seconds or (p.steps and p.step == p.steps):
            self._stage, self._last = p.stage, now
            self.callback(p)


class TerminalBar:
    """A tqdm bar for the command line: stage, epoch, loss and ETA."""

    def __init__(self):
        self._bar = None
        self._stage = None

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm

        if p.stage in TRAINING_STAGES:
            if self._bar is not None and p.stage != self._stage:
                self._bar.close()
                self._bar = None
            if self._bar is None:
                self._bar = tqdm(total=p.steps, unit="step", dynamic_ncols=True, leave=True)
            self._stage = p.stage
            self._bar.n = p.step
            loss = f"{p.loss:.3f}" if p.loss is not None else "-"
            self._bar.set_description(p.epoch_label)
            self._bar.set_postfix_str(f"loss {loss}")
            self._bar.refresh()
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if p.stage != self._stage or p.message:
            import sys

            print(f"[{p.stage}] {p.message}".rstrip(), file=sys.stderr, flush=True)
        self._stage = p.stage
