"""Child processes for the fault tests: start several at once, or kill one mid-write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def run_together(
    target: Callable[..., None],
    args_list: Sequence[tuple],
    method: str = "fork",
    timeout: float = 120,
) -> list[multiprocessing.process.BaseProcess]:
    """Run ``target(*args, barrier)`` in one child per ``args``, released at once.

    Each child calls ``barrier.wait()`` before the work whose concurrency is tested.
    Returns the finished children (``exitcode``, ``pid``).
    """
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(*args, barrier)) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    return procs


def kill_when_writing(
    target: Callable[..., None], args: tuple, marker: Path, timeout: float = 120
) -> Path:
    """Run ``target(*args)`` in a forked child and SIGKILL it once ``marker`` exists.

    The child writes the path it is writing into ``marker``, then hangs; the path is
    returned after the child has died by the signal.
    """
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    deadline = time.monotonic() + timeout
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    return Path(marker.read_text())
