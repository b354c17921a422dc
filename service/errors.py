"""Domain errors of the service. Each message is written for the student or instructor who sees it;
the bot shows it as is (ephemeral), the command line prints it."""

from __future__ import annotations

from core.errors import TinyTutorError


class ServiceError(TinyTutorError):
    """A request the service refuses; the message says why and what to do."""


class NotFound(ServiceError):
    """No such job or model that this caller may see (never says whether it exists elsewhere)."""


class PermissionDenied(ServiceError):
    pass


class InvalidRequest(ServiceError):
    """A setting or argument that cannot work."""


class Conflict(ServiceError):
    """The thing is not in a state that allows this (e.g. cancelling a finished job)."""


class RateLimited(ServiceError):
    """Too much at once or too often; ``retry_after`` says in how many seconds to try again."""

    def __init__(self, message: str, retry_after: float = 0.0):
        self.retry_after = retry_after
        super().__init__(message)


class QuotaExceeded(ServiceError):
    """A class quota refuses the request. ``limit`` is the quota's name, ``value`` its setting."""

    def __init__(self, limit: str, value: int, message: str):
        self.limit, self.value = limit, value
        super().__init__(f"{message} (class quota {limit} = {value:,}). Ask your instructor if you need more.")


class InvalidDataset(ServiceError):
    """The uploaded file cannot be trained on; ``problems`` are the trainer's row-level findings."""

    def __init__(self, problems):
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"The file cannot be trained on ({n} problem{'s' if n != 1 else ''}); nothing was stored:\n{lines}")
