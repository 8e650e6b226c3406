"""The tracking store, checked before anything runs: a server that answers, a local SQLite
store whose folder can be written, and a new local store created once even when two studies
start on it together (MLflow's schema migrations are not safe to run twice at the same time)."""

from __future__ import annotations

import functools
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock, Timeout

from harness.errors import SpecError


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    return Path(urlparse(tracking_uri).path)


def check_writable(folder: Path, what: str) -> None:
    """SpecError unless `folder` exists or can be created, and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".harness-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SpecError(f"{what} {folder}: cannot write there ({exc.strerror or exc})") from None


def _check_local(path: Path) -> None:
    """The SQLite store's folder can be written, and so can its database file if it exists."""
    check_writable(path.parent, "the tracking store's folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise SpecError(f"tracking store {path}: the database file is read-only")


@functools.cache
def _created(tracking_uri: str) -> bool:
    """Create (or migrate) the local SQLite store once, under a file lock shared by every
    process: concurrent first uses otherwise race in MLflow's migrations (`duplicate column`,
    `table alembic_version already exists`)."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(tracking_uri)
    assert path is not None
    _check_local(path)
    try:
        with FileLock(str(path) + ".lock", timeout=300):
            MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Timeout:
        raise SpecError(f"tracking store {path}: another process holds its lock for over 5 minutes") from None
    except sqlite3.OperationalError as exc:  # pragma: no cover - depends on the file system
        raise SpecError(f"tracking store {path}: {exc}") from None
    return True


def check_server(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """SpecError unless the MLflow server at `tracking_uri` answers its health check."""
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise SpecError(
        f"--tracking-uri {tracking_uri}: the MLflow server does not answer ({problem}); start it, or drop "
        "--tracking-uri to use the local store"
    )


def check_store(tracking_uri: str, create: bool = True) -> None:
    """Check the tracking store a study will write to, before any run exists: the server
    answers, or the local store's folder can be written. With `create`, a new local SQLite
    store is also created (once, under a lock); without, nothing is written but a folder, so a
    later check that fails (a bad `--address`) leaves no database behind."""
    if tracking_uri.startswith(("http://", "https://")):
        check_server(tracking_uri)
    elif (path := sqlite_path(tracking_uri)) is not None:
        if create:
            _created(tracking_uri)
        else:
            _check_local(path)
    elif tracking_uri.startswith("file:") or "://" not in tracking_uri:
        check_writable(Path(urlparse(tracking_uri).path or tracking_uri), "the tracking store's folder")
