"""Worker targets for the queue tests (module level, so a spawned process can import them)."""

from __future__ import annotations

import time


def slow_run_job(payload: dict) -> None:
    """The real worker, with each training step slowed down so a test can act mid-training."""
    import trainer.pipeline as pipeline
    from trainer.worker import run_job

    real = pipeline.run_training

    def slowed(spec, progress, registry=None):
        def on_progress(p):
            progress(p)
            if p.stage == "training":
                time.sleep(0.5)

        return real(spec, on_progress, registry)

    pipeline.run_training = slowed
    run_job(payload)
