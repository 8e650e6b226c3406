"""The tracking store, checked before anything runs: a server that answers, a local SQLite
store whose folder can be written, and a new local store created once even when two studies
start on it together (MLflow's schema migrations are not safe to run twice at the same time).
A local store on a local disk is put in SQLite's write-ahead-log mode (see `use_wal`)."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
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


# File systems whose files every process of one host maps alike, as SQLite's WAL mode requires
# (its shared-memory index does not work over NFS, SMB and other network file systems).
LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "tmpfs", "overlay", "apfs", "hfs"}
)


def file_system(path: Path) -> str | None:
    """The type of the file system that holds `path`, from /proc/mounts; None where unknown."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target, best, kind = str(path.resolve()), "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


def use_wal(path: Path) -> bool:
    """Put a local SQLite store in write-ahead-log mode (a setting kept in the file) unless it is
    on a network file system; returns whether the store is in it.

    A commit then appends to the log instead of copying pages to a rollback journal first, and
    readers (a dashboard, `harness ui`) no longer block the writer. With `fast_commits` a commit
    waits for no fsync either (docs/benchmarks.md: `harness_overhead.py --no-wal`)."""
    kind = file_system(path.parent)
    if kind is not None and kind not in LOCAL_FILE_SYSTEMS:
        return False
    try:
        # A short timeout: another process reading the store keeps it in its mode for now.
        with contextlib.closing(sqlite3.connect(path, timeout=1.0)) as db:
            return db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    except sqlite3.Error:
        return False


def fast_commits() -> None:
    """`synchronous=NORMAL` on this process's SQLite connections to a store in WAL mode: commits
    wait for no fsync. A crash of any process loses no commit; a power cut can undo the last
    ones (never corrupt the store), as it can lose Ray Tune's own unsynced records."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(connection: Any, record: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            mode = connection.execute("PRAGMA journal_mode").fetchone()
            if mode and mode[0] == "wal":
                connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(Engine, "connect", on_connect)


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
            use_wal(path)
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
