"""Write-to-temp-then-rename helpers: readers never see a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from contracts import UserError


class OutputError(UserError):
    """Outputs cannot be written where the user asked (a read-only or full disk, no permission)."""


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yields a temp path beside `target`; renamed onto it only if the block succeeds. An OSError
    of the block, which only writes the file, is the user's OutputError (disk full, no right)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a block here only writes `tmp`: ENOSPC, EDQUOT, EFBIG...
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode())


def check_writable(directory: Path) -> None:
    """Fail before any work starts if outputs cannot be written there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"output directory {directory} is not writable: {exc.strerror or exc}") from None
