"""Credentials: from environment variables, or from a secrets folder outside the repository.

Configuration files never hold a secret, only the *name* of one (`dsn_env`, `headers_env` in
config/syncs.yml and config/sources.yml). `read_secret(name)` returns the environment variable
of that name, or else the file `<EXPANSION_SECRETS_DIR>/<name>` (the layout of Docker and
Kubernetes secrets). The folder must lie outside the project directory, so a secret cannot be
committed by accident, and a secret file readable by other users is refused.

Every value read is registered with `flows.masking`, so no message, record or log line that
passes through `mask_text` shows it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flows.errors import SecretError
from flows.masking import register_secret

PROJECT_DIR = Path(__file__).resolve().parents[1]
SECRETS_DIR_ENV = "EXPANSION_SECRETS_DIR"


def secrets_dir() -> Path | None:
    folder = os.environ.get(SECRETS_DIR_ENV)
    if not folder:
        return None
    path = Path(folder).expanduser().resolve()
    if path == PROJECT_DIR or PROJECT_DIR in path.parents:
        raise SecretError(
            f"{SECRETS_DIR_ENV}={folder} is inside the project directory {PROJECT_DIR}: keep "
            "secrets outside the repository"
        )
    return path


def read_secret(name: str) -> str | None:
    """The secret `name`: its environment variable, else its file in the secrets folder."""
    value = os.environ.get(name)
    if value:
        register_secret(value)
        return value
    folder = secrets_dir()
    if folder is None:
        return None
    path = folder / name
    if not path.is_file():
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"secret file {path} can be read or written by other users "
            f"(mode {stat.filemode(mode)}): chmod 600 {path}"
        )
    secret = path.read_text(encoding="utf-8").strip() or None
    register_secret(secret)
    return secret
