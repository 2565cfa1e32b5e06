"""File helpers: checksums and atomic writes (outputs appear whole or not at all)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success it replaces `path`, on error it is removed."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary sibling and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


# `.<name>.partial-<pid>@<host>+<random>`: a staging folder, named after the process that writes it
LEFTOVER = re.compile(r"^\..+\.(?:partial|previous)-(\d+)@([^+]*)\+")


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target` whole.

    On any error the staging folder is removed and an existing `target` is left as it was. Staging folders that a
    killed run left beside it (a model stage's can hold gigabytes) are removed first.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{_owner()}", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if target.exists():
            remove_folder(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_folder(folder: Path) -> None:
    """Remove `folder` so that it disappears at once (renamed aside, then deleted)."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.previous-{_owner()}", dir=folder.parent))
    os.replace(folder, aside / folder.name)
    shutil.rmtree(aside, ignore_errors=True)


def remove_abandoned(folder: Path) -> int:
    """Remove the staging folders in `folder` whose process, on this machine, no longer runs; the bytes freed."""
    freed = 0
    for path in abandoned(folder):
        freed += folder_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
    return freed


def abandoned(folder: Path) -> list[Path]:
    """Staging folders in `folder` left by a killed run on this machine."""
    host = socket.gethostname()
    found = []
    for name in glob.glob(".*.p*-*", root_dir=folder):
        match = LEFTOVER.match(name)
        if match and match[2] == host and not _running(int(match[1])):
            found.append(folder / name)
    return found


def folder_bytes(folder: Path) -> int:
    """The size of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}+"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
