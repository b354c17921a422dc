"""The use cases, for the bot and the command line alike. No ``discord`` import: callers pass ids and
plain values and get plain results; refusals are ``service.errors`` exceptions with readable messages.

Who may do what:
- a student sees, cancels and uses their own jobs and models, and models shared with their class;
- an instructor (Discord's Manage Server or the configured role; decided by the caller) also sees
  and steers the whole class's queue and quotas;
- nothing crosses from one class (guild) to another: a job or model of another class is "not found".

One module per use case: ``submissions`` (check and queue a file), ``jobs`` (see, cancel, reports),
``models`` (models and predictions), ``experiments`` (several jobs differing in one setting, seen
together), ``assignments`` (setting assignments, picks, the reveal) on ``boards`` (what each caller sees of them, exports), ``compare``
(comparing runs), ``admin`` (quotas, pause, the class report, retention), ``access`` (dashboard sign-in
links and sessions), ``ratelimit`` (per-student rate limits); ``base`` holds what they share and
``views`` what callers get back. ``Service`` is all of them on one database.
"""

from __future__ import annotations

from .access import Access, WebIdentity
from .admin import Admin
from .boards import AssignmentView, Leaderboard
from .compare import Comparison
from .experiments import Experiments, ExperimentView
from .jobs import Jobs
from .models import Models
from .submissions import Submissions
from .views import Caller, JobView, ModelView, ReportView, Submitted, csv_cell


class Service(Submissions, Jobs, Models, Experiments, Admin, Access):
    """Every use case, sharing one database, artefact store and prediction cache."""


__all__ = ["AssignmentView", "Caller", "Comparison", "ExperimentView", "Leaderboard", "JobView", "ModelView", "ReportView", "Service", "Submitted", "WebIdentity", "csv_cell"]
