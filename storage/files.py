"""Files under the data directory: uploaded datasets, model directories (with their plots), logs.

Names never come from user input: a dataset is stored under its SHA-256 with a known suffix, a
model under its job id and attempt. Everything is written to a temporary name and renamed, so a
reader never sees half a file and a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from core.errors import StorageError
from core.files import atomic_directory

# Suffixes the trainer reads by name; anything else is stored as .txt (sniffed as delimited text).
KNOWN_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json", ".xlsx", ".xls")


def safe_suffix(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in KNOWN_SUFFIXES else ".txt"


class ArtefactStore:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir).resolve()

    def make_private(self) -> bool:
        """Create the data directory readable by its owner only, or make an existing one so (directories
        made before 0700 was the rule were world-readable). True when it had to be tightened."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_mode & 0o077:
            self.root.chmod(0o700)
            return True
        return False

    def path(self, rel: str | Path) -> Path:
        """The absolute path of a stored artefact; refuses anything outside the data directory."""
        p = (self.root / rel).resolve()
        if p != self.root and self.root not in p.parents:
            raise StorageError(f"{rel} is outside the data directory")
        return p

    def rel(self, path: str | Path) -> str:
        return str(Path(path).resolve().relative_to(self.root))

    # -- uploads ---------------------------------------------------------------------------------
    def staging_file(self, content: bytes, filename: str) -> Path:
        """Write an upload to a private temporary file (checked before it is kept)."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=safe_suffix(filename), dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        except BaseException:  # a full disk: no half-written file left in tmp/
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def keep_dataset(self, staged: Path, digest: str) -> tuple[Path, bool]:
        """Move a checked upload to ``datasets/xx/<sha256><suffix>``: (its path, whether it is new).
        The same content is kept once; the staged copy is then left for the caller to remove."""
        final = self.root / "datasets" / digest[:2] / f"{digest}{staged.suffix}"
        if final.exists():
            return final, False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        return final, True

    # -- models ----------------------------------------------------------------------------------
    def model_rel(self, job_id: int, attempt: int) -> str:
        return f"models/job-{job_id}-a{attempt}"

    def remove_partial(self, model_rel: str) -> None:
        """Remove what a killed run left: its temporary directories (run_training writes .<name>.*)."""
        target = self.path(model_rel)
        if target.parent.is_dir():
            for leftover in target.parent.glob(f".{target.name}.*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def remove_model(self, model_rel: str) -> None:
        """Remove one attempt's model directory and its temporaries: for an attempt that did not succeed
        (a worker killed while saving leaves the renamed directory without a model row)."""
        self.remove_partial(model_rel)
        self.remove_tree(model_rel)

    def sweep_models(self, keep: set[str]) -> list[str]:
        """Remove model directories (and temporaries) under ``models/`` that are not in ``keep`` (relative
        paths of stored models and of running attempts); returns the names removed."""
        root = self.root / "models"
        if not root.is_dir():
            return []
        names = {Path(k).name for k in keep}
        removed = []
        for entry in sorted(root.iterdir()):
            owner = entry.name.lstrip(".").split(".")[0]  # ".job-3-a2.x7k" belongs to "job-3-a2"
            if entry.is_dir() and owner.startswith("job-") and owner not in names:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def copy_report_files(self, job_id: int, files: list[Path]) -> list[str]:
        """Copy a finished job's plots and test examples to ``reports/job-N/`` (temp dir, then rename); their
        relative paths."""
        final = self.root / "reports" / f"job-{job_id}"
        with atomic_directory(final, replace=True) as tmp:  # replace: an earlier attempt got this far
            for f in files:
                shutil.copy2(f, tmp / f.name)
        return [self.rel(final / f.name) for f in files]

    def remove_tree(self, rel: str) -> None:
        shutil.rmtree(self.path(rel), ignore_errors=True)

    def job_files(self, job_id: int) -> list[Path]:
        """What a finished job left here: its log, its plots, its attempts' model directories."""
        found = [self.root / "logs" / f"job-{job_id}.log", self.root / "reports" / f"job-{job_id}"]
        models = self.root / "models"
        if models.is_dir():
            found += sorted(models.glob(f"job-{job_id}-a*")) + sorted(models.glob(f".job-{job_id}-a*"))
        return [p for p in found if p.exists()]

    def stale_staging(self, older_than_seconds: float) -> list[Path]:
        """Uploads staged in ``tmp/`` and never cleaned up (a crash, a full disk), older than given."""
        import time

        tmp = self.root / "tmp"
        limit = time.time() - older_than_seconds
        return sorted(p for p in tmp.iterdir() if p.stat().st_mtime < limit) if tmp.is_dir() else []

    def log_path(self, job_id: int) -> Path:
        p = self.root / "logs" / f"job-{job_id}.log"
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a directory; 0 for nothing there."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
