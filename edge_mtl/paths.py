"""Where the repository keeps its shipped files, and the default model every command starts from."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
# The released checkpoint (models/README.md is its card) and the recipe that trains it.
DEFAULT_CHECKPOINT = MODELS_DIR / "tritask_mnv2.pt"
DEFAULT_CONFIG = MODELS_DIR / "tritask_mnv2.yaml"


def shipped_file(path: str | Path) -> Path:
    """``path`` as given, or, when it is relative and absent from the working directory, the
    repository's own file of that name (configs name ``models/…`` from the repository root)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    in_repo = REPO_ROOT / path
    return in_repo if in_repo.exists() else path
