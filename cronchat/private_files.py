"""Directories and files readable by the server's user only: 0700 and 0600, whatever the
umask. The data dir holds password hashes, messages, the secrets and the media."""

from __future__ import annotations

import os
from pathlib import Path

from storage.local import DIR_MODE, FILE_MODE, make_private_dir

# Directories: the media store's helper, so that the data dir and the media under it are made
# alike (storage/ knows nothing of cronchat, so the helper lives there).
__all__ = ["DIR_MODE", "FILE_MODE", "create_private_file", "make_private_dir"]


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
