"""The one way every command writes a file it owns.

- **Atomic**: the bytes go to a temporary file in the same directory, are synced, and the file is
  renamed into place, so a kill or a full disk never leaves half a file.
- **Never through a link**: a target that is a symbolic link, or that lies under a link inside
  the directory the command owns (``root``), is refused in one line naming it; nothing is
  written anywhere.
- **Never over a file it did not create**: with ``replace=False`` an existing file is replaced
  only if it already holds the very bytes (writing it again changes nothing); anything else is
  refused in one line naming it.

Appends (the metrics log) and the lock file are opened with ``O_NOFOLLOW``
(:func:`open_append`), so a link there is refused too.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class LinkRefused(ValueError):
    """A path the command would write through a symbolic link (the message names it)."""


class NotOurs(ValueError):
    """An existing file the command did not write (the message names it)."""


def link_in(path: Path, root: Path | None = None) -> Path | None:
    """The first symbolic link among ``path`` and its parents below ``root`` (``path`` itself
    only without ``root``), else None."""
    path = Path(path)
    chain = [path]
    if root is not None:
        root = Path(root)
        chain += [p for p in path.parents if p != root and root in p.parents]
    for p in chain:
        if p.is_symlink():
            return p
    return None


def refuse_links(path: Path, root: Path | None = None) -> None:
    """A LinkRefused naming the link if ``path`` (or a parent below ``root``) is one."""
    found = link_in(path, root)
    if found is not None:
        raise LinkRefused(
            f"{found} is a symbolic link: toyopt writes no file through a link; remove it"
            " (or point the command elsewhere)"
        )


def not_ours(path: Path, hint: str = "move it or choose another --out") -> NotOurs:
    return NotOurs(f"{path} exists and was not written by toyopt: {hint}")


def check_target(path: Path, data: bytes | None = None, root: Path | None = None,
                 replace: bool = True, hint: str = "move it or choose another --out") -> bool:  # fmt: skip
    """Check that ``path`` may be written (see the module docstring); True if it already holds
    ``data`` exactly (nothing to write). Touches nothing."""
    path = Path(path)
    refuse_links(path, root)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} exists and is not a file: move it or choose another path")
    if replace or not path.exists():
        return False
    if data is not None and path.stat().st_size == len(data) and path.read_bytes() == data:
        return True
    raise not_ours(path, hint)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: Path, fill: Callable[[Path], None], root: Path | None = None,
               replace: bool = True) -> Path:  # fmt: skip
    """Write ``path`` atomically by calling ``fill(tmp)`` on a temporary file beside it (for
    writers that want a file name, e.g. savefig or safetensors), after the checks of
    :func:`check_target` (``replace=False``: the file must not exist)."""
    path = Path(path)
    check_target(path, None, root, replace)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        refuse_links(path, root)  # again, just before the rename
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename in (name, str(tmp)):
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(path: Path, data: bytes, root: Path | None = None, replace: bool = True,
                hint: str = "move it or choose another --out") -> Path:  # fmt: skip
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    if check_target(path, data, root, replace, hint):
        return path

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    # replace=False was checked above (identical bytes return early)
    return write_with(path, fill, root, replace=True)


def write_text(path: Path, text: str, root: Path | None = None, replace: bool = True,
               hint: str = "move it or choose another --out") -> Path:  # fmt: skip
    return write_bytes(path, text.encode("utf-8"), root, replace, hint)


def write_json(path: Path, data, root: Path | None = None, replace: bool = True) -> Path:
    """JSON (indent 1) through :func:`write_bytes`."""
    return write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"), root, replace)


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` with ``O_NOFOLLOW``: a link at ``path`` is a LinkRefused naming it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise LinkRefused(
                f"{path} is a symbolic link: toyopt writes no file through a link; remove it"
            ) from None
        raise


def open_append(path: Path, truncate: bool = False):
    """A text file opened for appending, never through a link (``truncate``: emptied first)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.fdopen(open_nofollow(Path(path), flags), "a", encoding="utf-8")
