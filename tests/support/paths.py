"""Where the repository's files are, for tests that read schemas, deploy files and docs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
