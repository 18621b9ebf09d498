"""Directories and files readable by the server's user only: 0700 and 0600, whatever the
umask. The data dir holds password hashes, messages, the secrets and the media."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE, FILE_MODE = 0o700, 0o600


def make_private_dir(path: Path) -> None:
    """Create the directory and its missing parents, each of them 0700. A directory that
    exists already is left as it is: it is the operator's."""
    missing = []
    current = path.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(directory, DIR_MODE)  # the umask may have taken bits of the owner's


def create_private_file(path: Path) -> bool:
    """Create the file, empty and 0600, unless it exists; answers whether it was created."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    return True
