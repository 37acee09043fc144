"""The files a review reads besides the store: specs and the code they describe.

Rules never touch the file system themselves; they ask the view's workspace,
which the engine builds from ``specs_dir`` and ``repo_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Workspace:
    specs_dir: Path | None
    repo_dir: Path | None
