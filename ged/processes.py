"""The process tree of `ged serve`: children that end with their parent.

Each child (gunicorn, the worker(s), the drop receiver, the private Redis) runs in a
process group of its own, so a Ctrl-C in the terminal reaches only `ged serve`, which
then stops the children in order (the web and the workers first, Redis last, so that
no worker loses its Redis while it releases its locks). Each child also asks the
kernel (PR_SET_PDEATHSIG) for SIGTERM when `ged serve` dies, even by SIGKILL, and
whatever is left in a child's group after it ended (an OCR process, a forked
scheduler) is killed with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

PR_SET_PDEATHSIG = 1

# Run by `python -I -S -c`: sets the parent-death signal, then becomes the real
# command (the setting survives execve). Checking the parent after prctl closes the
# race where the parent died before the call.
_LAUNCHER = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only;
    False elsewhere). Call it in the child, from the thread that will outlive it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def spawn(argv: list[str], env: dict | None = None, **popen_kwargs) -> subprocess.Popen:
    """Start ``argv`` in a process group of its own, terminated when this process dies.
    Call it from the main thread (the parent-death signal follows the forking thread)."""
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()),
                             *argv], env=env, process_group=0, **popen_kwargs)


def free_port() -> int:
    """A TCP port free on the loopback interface now, for a child to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to every process left in group ``pgid`` (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_own_group() -> None:
    """On the way out of a process that leads its own group (a supervised worker):
    terminate what it started and left behind (OCR processes of an abandoned job)."""
    if os.getpgrp() != os.getpid():
        return  # in a terminal's or a service manager's group: not ours to end
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kill_group(os.getpid(), signal.SIGTERM)


@dataclass
class Child:
    """One supervised command; ``essential`` ones stop the whole server when they end."""

    name: str
    argv: list[str]
    env: dict
    essential: bool = False
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        self.process = spawn(self.argv, self.env)
        self.started_at = time.monotonic()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    """Starts children, restarts the non-essential ones that die (with a growing
    delay), and stops them all within ``stop_timeout`` seconds."""

    stop_timeout: float = 15.0
    children: list[Child] = field(default_factory=list)

    def add(self, name: str, argv: list[str], env: dict, essential: bool = False) -> Child:
        child = Child(name, argv, env, essential)
        self.children.append(child)
        return child

    def start(self) -> None:
        for child in self.children:
            child.start()

    def check(self) -> Child | None:
        """Restart what died and may be restarted; returns an essential child that
        ended (the caller then stops everything), else None."""
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                if now >= child.next_start:
                    child.start()
                continue
            if child.process.poll() is None:
                continue
            if child.essential:
                return child
            kill_group(child.process.pid)
            lived = now - child.started_at
            child.restarts = 0 if lived > 60 else child.restarts + 1
            delay = min(30.0, 2.0 ** child.restarts) if child.restarts else 0.0
            print(f"ged serve: {child.name} exited with status {child.process.returncode}; "
                  f"restarting it" + (f" in {delay:.0f} s" if delay else ""),
                  file=sys.stderr, flush=True)
            child.process = None
            child.next_start = now + delay
        return None

    def stop(self) -> None:
        """SIGTERM every child at once, SIGKILL the groups of those still running at
        the deadline, and sweep what any child left in its group."""
        alive = [c for c in self.children if c.running()]
        for child in alive:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in alive:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"ged serve: {child.name} did not stop in time; killing it",
                      file=sys.stderr, flush=True)
                kill_group(child.process.pid)
                child.process.wait(5)
        for child in self.children:
            if child.process is not None:
                kill_group(child.process.pid)
