"""A store of files under one root directory on local disk."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from storage import MissingObject, Storage, StorageError, check_key

DIR_MODE, FILE_MODE = 0o700, 0o600


class LocalStorage(Storage):
    """Each key is a file under ``root``. A write goes to a temporary file in the same
    directory, then ``os.replace`` puts it in place: readers see the old bytes or the new
    ones, never half a file. Files are 0600 and the directories made here 0700, whatever
    the umask: readable by the server's user only."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            make_private_dir(path.parent)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as error:
            raise StorageError(_reason(f"cannot write under {path.parent}", error)) from None
        try:
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise StorageError(_reason(f"cannot write {path}", error)) from None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise MissingObject(f"no file {path}") from None
        except OSError as error:
            raise StorageError(_reason(f"cannot read {path}", error)) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(_reason(f"cannot delete {path}", error)) from None

    def check(self) -> None:
        try:
            make_private_dir(self.root)
            descriptor, probe = tempfile.mkstemp(dir=self.root, prefix=".check-")
            os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            raise StorageError(
                _reason(f"media directory {self.root} is not writable", error)
            ) from None

    def describe(self) -> str:
        return f"local directory {self.root}"


def make_private_dir(path: Path) -> None:
    """Create the directory and its missing parents, each of them 0700 (``mkdir`` alone would
    give them the umask's mode). A directory that exists already is left as it is: it is the
    operator's."""
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


def _reason(what: str, error: OSError) -> str:
    return f"{what} ({error.strerror or error})"
