"""The control plane's private files: the data dir 0700, the database (and its WAL) and the admin token
0600, whatever the umask, and also when an older version left them readable by other local users.

Run logs, CSRF tokens and token hashes live there; a private run dir holds a run's extravars and output.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from animaflow_control.settings import Settings

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)  # mkdir's mode is narrowed by the umask, and an existing dir keeps its own


def secure_data_dir(settings: Settings) -> None:
    """Creates or repairs the modes before the database is opened: SQLite gives its -wal and -shm files
    the database file's mode, so a 0600 database keeps them private from the first write."""
    private_dir(settings.data_path)
    private_dir(settings.runs_dir)
    for run_dir in settings.runs_dir.iterdir():
        if run_dir.is_dir() and not run_dir.is_symlink():
            run_dir.chmod(PRIVATE_DIR)
    db = settings.db_file
    # A database elsewhere (ANIMAFLOW_DB_PATH) keeps its directory as it is: only its files are ours.
    db.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for path in (db, *(db.with_name(db.name + suffix) for suffix in SQLITE_SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            path.chmod(PRIVATE_FILE)
    with contextlib.suppress(FileNotFoundError):
        settings.admin_token_file.chmod(PRIVATE_FILE)


def write_private(path: Path, text: str) -> None:
    """Replaces the file atomically with a 0600 one: never readable by others, not even briefly, and
    never half-written (a crash leaves the old file or the new one)."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
