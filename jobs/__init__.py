"""The job runner: what runs when, where, and what the class hears about it.

The layering is ``bot -> service -> jobs -> {storage, trainer}``: this package uses the database
(``storage``) and the ML (``trainer``), and knows nothing of Discord or the service.

- ``fairness``: the order queued jobs start in; ``eta``: positions and expected times.
- ``scheduler``: the dispatcher (claims jobs under a lease) and the reaper (cancel, time limit,
  dead or silent workers), on ``periodic`` (the process's one periodic-task mechanism).
- ``executor``: where a job runs: ``LocalExecutor`` (a process running ``worker.run_job``, forked ready to train)
  or ``ray_executor.RayExecutor`` (a Ray task, no shared filesystem).
- ``outbox``: the pump that delivers finished jobs' notices.
- ``messages``: what a student reads when the runner, not their data, ends a job.
"""

from __future__ import annotations


def make_executor(settings):
    """The executor ``[queue].executor`` names: "local" (default) or "ray"."""
    kind = getattr(settings.queue, "executor", "local")
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(settings)
    from .executor import LocalExecutor

    return LocalExecutor(hidden_env=(settings.web.secret_env,))
