"""Child processes that read untrusted files: a crash, a hang or a memory bomb in a
parser fails that one file and never the process that asked.

Each child dies with its parent (a worker killed mid-OCR leaves nothing running), has
its address space bounded (CHILD_MEMORY_BYTES), runs Tesseract single-threaded and
lets Pillow decode no image over MAX_IMAGE_PIXELS. ``Children`` is a pool for one
piece of work (an extraction, a preview), forked from a worker; ``Checkers`` is a
small long-lived pool shared by a web process's request threads, started from a fork
server, each look at a file bounded in CPU time.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import faulthandler
import logging
import multiprocessing
import os
import resource
import signal
import threading

from .processes import die_with_parent

log = logging.getLogger(__name__)

CHILD_MEMORY_BYTES = 2 * 1024 ** 3  # address space of a parsing child (Tesseract included)
MAX_IMAGE_PIXELS = 120_000_000  # about 12,000 x 10,000: far above a 600 dpi A3 scan
PROBE_TIMEOUT = 300  # seconds to read a file's structure and text layer


class ExtractionFailed(Exception):
    """The file cannot be read; the message is the reason (stored in text_error)."""


def _child_init(memory_bytes: int, parent: int | None) -> None:
    """In each child: killed with its parent, bounded memory, single-threaded
    Tesseract, no Pillow bomb."""
    die_with_parent(signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect
    faulthandler.disable()  # a parser crash is reported by the parent, once
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.environ["OMP_THREAD_LIMIT"] = "1"
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _context():
    # fork: a child starts at once with everything imported, and runs only the
    # parsing function (RQ's own work-horses are forked the same way); a forkserver
    # would re-run the main script in every child.
    return multiprocessing.get_context("fork")


_checker_context = None


def checker_context():
    """The context for children started from a request thread: a fork server, started
    once per process from a single thread and preloaded with the parsers. Forking the
    threaded web process itself could copy a lock another thread held (a child stuck
    forever, a good file refused under load)."""
    global _checker_context
    if _checker_context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ged.sandbox", "ged.filetypes", "pypdfium2",
                                        "pikepdf", "PIL.Image"])
        _checker_context = context
    return _checker_context


class Children:
    """A pool of parsing children for one piece of work; a crash, a timeout or a memory
    error in a child becomes ExtractionFailed."""

    def __init__(self, processes: int, *, mp_context=None):
        self.size = max(1, processes)
        context = mp_context or _context()
        # A forked child's parent is this process; a fork server's child's is the
        # server (which ends with this process).
        parent = os.getpid() if context.get_start_method() == "fork" else None
        self.pool = cf.ProcessPoolExecutor(max_workers=self.size, mp_context=context,
                                           initializer=_child_init,
                                           initargs=(CHILD_MEMORY_BYTES, parent))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)

    def close(self, kill: bool = False) -> None:
        if kill:
            # Children we started and that are stuck or unwanted: end them now (their
            # Tesseract processes die with them, see extraction.tesseract).
            for process in list((self.pool._processes or {}).values()):
                with contextlib.suppress(Exception):
                    process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def result(self, future, timeout: float):
        try:
            return future.result(timeout=timeout)
        except cf.TimeoutError:
            raise ExtractionFailed("Reading this file took too long.") from None
        except cf.process.BrokenProcessPool:
            raise ExtractionFailed("This file could not be read (the reader stopped on it; "
                                   "it may be damaged or malicious).") from None
        except MemoryError:
            raise ExtractionFailed("This file needs too much memory to be read "
                                   "(a possible decompression bomb).") from None
        except ExtractionFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser error: this file only
            log.info("extraction error: %r", exc)
            raise ExtractionFailed(f"This file could not be read: {_short(exc)}") from None

    def run(self, fn, *args, timeout: float):
        return self.result(self.submit(fn, *args), timeout)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class Checkers:
    """A few long-lived checking children per process, started from a fork server (never
    by forking the threaded web process, which could copy a lock another thread held).
    Each look gets its own CPU budget; a child that overruns is killed (SIGXCPU) or,
    past its wall-clock bound, the pool is replaced."""

    def __init__(self, size: int):
        self.size = size
        self.lock = threading.Lock()
        self.children = None
        self.registered = False

    def _pool(self) -> Children:
        with self.lock:
            if self.children is None:
                self.children = Children(self.size, mp_context=checker_context())
                if not self.registered:
                    atexit.register(self.close)  # before the interpreter tears down
                    self.registered = True
            return self.children

    def close(self) -> None:
        with self.lock:
            children, self.children = self.children, None
        if children is not None:
            children.close(kill=True)

    def _replace(self, broken: Children) -> None:
        with self.lock:
            if self.children is broken:
                self.children = None
        broken.close(kill=True)

    def run(self, fn, *args, cpu_seconds: float, wall_seconds: float):
        """``fn(*args)`` in a checking child with ``cpu_seconds`` of CPU and at most
        ``wall_seconds`` of waiting; ExtractionFailed when it gave up."""
        # A child killed for one file breaks the whole pool, so the other files in it at
        # that moment fail too: each file is tried once more in a fresh pool, where only
        # the file that costs too much fails again.
        for attempt in (1, 2):
            children = self._pool()
            future = children.submit(_budgeted, cpu_seconds, fn, *args)
            try:
                return future.result(timeout=wall_seconds)
            except cf.process.BrokenProcessPool:
                self._replace(children)
                if attempt == 2:
                    raise ExtractionFailed("the checking child was killed") from None
            except cf.TimeoutError:
                self._replace(children)
                raise ExtractionFailed("the check took too long") from None
            except Exception as exc:  # noqa: BLE001 - the parser's own error: this file only
                raise ExtractionFailed(str(exc)[:200]) from None
        raise AssertionError("unreachable")


def _budgeted(cpu_seconds: float, fn, *args):
    """In a checking child: ``fn(*args)`` with ``cpu_seconds`` more CPU than used so far.
    CPU time, not wall time: a file costs the same whatever else the machine is doing,
    so a busy server never refuses a good file for being slow to check."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    limit = int(usage.ru_utime + usage.ru_stime + cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (limit, resource.RLIM_INFINITY))
    return fn(*args)
