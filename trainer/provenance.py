"""What a run needs to be reproduced: the base model's content hash and the package versions.

The spec (with its seed) is recorded beside these in metrics.json; the data file's hash is the
stored dataset's name on the service side."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("tinytutor", "torch", "transformers", "tokenizers", "peft", "onnxruntime", "scikit-learn", "numpy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def content_hash(directory: str | Path) -> str:
    """SHA-256 over a model directory's files (names and bytes, in name order): the same hash means the
    same weights, config and tokenizer, whatever the path or the copy."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
