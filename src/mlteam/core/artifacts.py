"""The artifact store: one fsspec root, keys confined beneath it, writes made atomic.

Every write goes to a temporary name beside its target and is renamed into place, and the
metadata row that makes an object visible is written only after the rename: a crash leaves
at most an orphan file nobody can see, never a half-written object.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from mlteam.core.errors import InvalidInput, NotFound


def clean_key(key: str) -> str:
    """Normalise a relative key; refuse anything that would leave the root."""
    if not key or "\\" in key or "\x00" in key:
        raise InvalidInput(f"invalid artifact path: {key!r}", {"field": "path"})
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or key.startswith("/"):
        raise InvalidInput(f"invalid artifact path: {key!r}", {"field": "path"})
    return "/".join(parts)


class ArtifactStore:
    def __init__(self, root: str) -> None:
        self.fs: fsspec.AbstractFileSystem
        self.fs, path = url_to_fs(root)
        self.root = path.rstrip("/")
        self.protocol = (
            self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        )
        self.is_local = self.protocol in ("file", "local")
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, clean_key(key))

    def uri(self, key: str) -> str:
        path = self.path(key)
        return path if self.is_local else f"{self.protocol}://{path}"

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """Open `key` for writing; it appears only if the block finishes."""
        target = self.path(key)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as fh:
                yield fh
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    @contextlib.contextmanager
    def local_writer(self, key: str) -> Iterator[str]:
        """A local file path to write `key` at; `key` appears only if the block finishes.

        For writers that want a path rather than a Python file object: pyarrow writes to a
        path natively, without the interpreter lock, where a Python file object takes a call
        back into Python per page (measured on the prediction log: ~0.8 ms of a 1,000-row
        request's share of the writer). On a local store the file sits beside its target
        and is renamed into place; on another it is a temporary file, uploaded after."""
        if self.is_local:
            target = self.path(key)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        else:
            fd, tmp = tempfile.mkstemp(prefix="mlteam-", suffix=".tmp")
            os.close(fd)
        try:
            yield tmp
            self.move_file(tmp, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_file(self, local_path: str, key: str) -> str:
        with open(local_path, "rb") as src, self.writer(key) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return key

    def move_file(self, local_path: str, key: str) -> str:
        """Take a finished local file as `key`; the caller is done with it. On a local store
        on the same filesystem it is renamed into place (atomic, and a dataset of gigabytes is
        not copied once more); anywhere else it is copied as `put_file` does."""
        if self.is_local:
            target = self.path(key)
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            try:
                os.replace(local_path, target)
                return key
            except OSError:  # another filesystem (EXDEV) or not allowed: copy instead
                pass
        return self.put_file(local_path, key)

    def put_bytes(self, data: bytes, key: str) -> str:
        with self.writer(key) as dst:
            dst.write(data)
        return key

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def open(self, key: str) -> IO[bytes]:
        path = self.path(key)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {key} not found")
        return self.fs.open(path, "rb")

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    def list(self, prefix: str) -> list[dict[str, Any]]:
        """Direct children of `prefix`: `{"path", "is_dir", "size"}`, paths relative to it."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        out = []
        for entry in self.fs.ls(base, detail=True):
            name = entry["name"].rstrip("/")
            if ".tmp-" in posixpath.basename(name):
                continue
            is_dir = entry["type"] == "directory"
            out.append(
                {
                    "path": posixpath.relpath(name, base),
                    "is_dir": is_dir,
                    "size": 0 if is_dir else int(entry.get("size") or 0),
                }
            )
        return sorted(out, key=lambda e: e["path"])

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(key), recursive=True)
