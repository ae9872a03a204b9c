"""One top-level handler for every command: an expected failure is one line on stderr and an exit
status, never a traceback.

- a user mistake (``ValueError``, so also data and format errors) → ``PROG: error: …``, status 2;
- ``OSError`` (a missing, unreadable or read-only path, a full disk) → the path and the reason,
  status 2;
- ``MemoryError`` → what ran out and what to reduce, status 2;
- Ctrl-C (``KeyboardInterrupt``) → ``PROG: interrupted``, status 130 (SIGTERM: 143 where the
  command turns it into a ``KeyboardInterrupt`` with a ``signum``).

Anything else (a bug) still shows its traceback. ``python -m toyopt.llm`` adds its own statuses
(3 for a divergence) around the same lines (:mod:`toyopt.llm.__main__`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable


def oserror_line(err: OSError, fallback: str | None = None) -> str:
    """``PATH: reason`` for an OSError (``fallback`` names the place when the error has no
    file name, as a failed write does)."""
    name = err.filename or fallback
    if getattr(err, "filename2", None):
        name = f"{name} -> {err.filename2}"
    reason = err.strerror or str(err) or type(err).__name__
    return f"{name}: {reason}" if name else reason


def memory_line(reduce: str) -> str:
    return f"out of memory; reduce {reduce}"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt)."""

    signum = signal.SIGTERM


# Signals received and not yet handled. C code can swallow the exception a signal handler raises
# (seen once in a few dozen Ctrl-Cs of a toy run, inside numpy: the run went on as if nothing
# had happened), so the training loop also checks this record once per step (check_stops).
_STOPS: list[int] = []


def _stop(signum, frame) -> None:
    _STOPS.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def catch_stops() -> Callable[[], None]:
    """Ctrl-C and SIGTERM raise ``KeyboardInterrupt`` / :class:`Terminated` where the program is
    (main thread only) and are recorded for :func:`check_stops`; returns the function that puts
    the previous handlers back. A SIGINT the process was started ignoring stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _STOPS.clear()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _stop)

    def restore() -> None:
        _STOPS.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def check_stops() -> None:
    """Raise again the interrupt of a signal whose exception was lost (see ``_STOPS``)."""
    if _STOPS:
        signum = _STOPS[-1]
        _STOPS.clear()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def handle(prog: str, body: Callable[[], int], reduce: str = "the problem size") -> int:
    """``body()``'s status, or one line on stderr and the status of an expected failure."""
    restore = catch_stops()
    try:
        return body()
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + signum
    except MemoryError:
        print(f"{prog}: error: {memory_line(reduce)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{prog}: error: {oserror_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        restore()


def writable_file(path, flag: str) -> None:
    """A ValueError, before any work, when ``path`` cannot be written as a file: it is a
    directory, its folder does not exist or is not writable, or it is a read-only file."""
    from pathlib import Path

    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path}: not writable (check the permissions)")


def writable_dir(path, flag: str) -> None:
    """A ValueError, before any work, when files cannot be written into the directory ``path``
    (created here, with its parents, if missing)."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot be created ({err.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: not writable (check the permissions)")
