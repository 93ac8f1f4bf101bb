"""Stopping a run and every process it started, however the run was stopped.

A long run (``rilib zoo train --jobs N``, ``rilib book run`` with chapters in parallel) does its work in child
processes. Ctrl-C reaches all of them (the terminal signals its whole process group), but ``kill PID`` reaches only
the parent, and ``kill -9`` runs no handler in it at all. So:

- the parent turns SIGTERM into an interrupt and passes it on to its children (:mod:`rilib.cli`, the zoo's pool
  and the book's runner);
- each child watches its parent (:func:`stop_with_parent`) and, once the parent is gone, interrupts itself as
  Ctrl-C would: a model stops at its last epoch checkpoint, a chapter keeps its partial notebook as ``.failed``.

No child trains or executes on for nobody, holding a model's lock or a chapter's notebook.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Mapping

#: The environment variable by which a parent asks the ``rilib`` command it starts to stop when it is gone.
PARENT_ENV = "RILIB_STOP_WITH"


def interrupt_once() -> None:
    """From now on SIGINT and SIGTERM raise KeyboardInterrupt in this process, once; later signals are ignored.
    (Ctrl-C reaches every process of the terminal's group, and then the parent passes the interrupt on: the
    second signal must not interrupt the clean-up that the first one started.)"""
    interrupted = threading.Event()

    def interrupt(signum, frame):
        if not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def stop_with_parent(parent: int, *, then: str = "", grace: float = 10.0, poll: float = 1.0) -> None:
    """Watch, in a daemon thread, that ``parent`` is still this process's parent. Once it is gone (killed however it
    was killed), say so on stderr (followed by ``then``), send SIGINT to this process, as Ctrl-C would, and exit
    with status 1 ``grace`` seconds later if the interrupt has not ended the process by then."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        print(f"rilib: the process that started this one ({parent}) is gone; stopping.{' ' + then if then else ''}",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="rilib-parent-watch", daemon=True).start()


def child_env(env: Mapping[str, str]) -> dict:
    """``env`` for a ``rilib`` command that this process starts and that must stop when this process is gone (read
    by :func:`stop_with_parent_from_env`)."""
    return {**env, PARENT_ENV: str(os.getpid())}


def stop_with_parent_from_env(*, then: str = "", grace: float = 10.0) -> bool:
    """:func:`stop_with_parent` if this process was started with :func:`child_env` (if that parent died before this
    process got here, it stops at once). The variable is removed from this process's environment, so that the
    processes it starts in turn (a kernel, a training worker) do not take it as theirs. Returns whether the watch
    started."""
    value = os.environ.pop(PARENT_ENV, None)
    try:
        parent = int(value) if value else None
    except ValueError:
        parent = None
    if parent is None:
        return False
    stop_with_parent(parent, then=then, grace=grace)
    return True
