"""Worker processes for large sweeps: `ordered_map(work, tasks, jobs)` runs `work(task)` in `jobs`
forked processes and yields the results in the order of the tasks. Standard library only.

Built for interruption rather than on multiprocessing.Pool, whose `terminate()` can wait for
ever on a lock a dead worker held. Here each worker has one pipe of its own and at most one
task at a time, so nothing is shared between workers and the parent never blocks on a worker
that cannot answer:

- a worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent alone decides),
  set before it can receive one: SIGINT stays blocked from before the fork until it is ignored;
- the parent waits on a worker's pipe and its process at once, so a worker that dies (killed,
  out of memory) is an error, `WorkerLost`, never a hang;
- however the parent leaves (the last result, an error, Ctrl-C, the reader gone), the workers
  are killed and reaped within JOIN_SECONDS each; a worker whose parent vanished sees its pipe
  close and exits;
- a worker says nothing on stderr: its failure travels back through the pipe and is raised in
  the parent.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Generator, Iterable
from typing import Any

from ffn_calc.errors import WorkerLost

JOIN_SECONDS = 0.5  # the longest the parent waits for a killed worker to be reaped


class _Failed:
    """An exception raised by `work` in a worker, sent back to be raised in the parent."""

    def __init__(self, error: BaseException) -> None:
        try:
            import pickle

            pickle.dumps(error)
            self.error: BaseException = error
        except Exception:  # an exception that does not pickle: its text
            self.error = RuntimeError(f"{type(error).__name__}: {error}")


def _serve(conn: Any, work: Callable[[Any], Any], inherited: list[Any]) -> None:
    """A worker's life: a task in, its result out, until the pipe closes or says None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for other in inherited:  # the parent's ends of the pipes, so that each closes when the parent's does
        other.close()
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                result: Any = work(task)
            except Exception as e:
                result = _Failed(e)
            conn.send(result)
    except (EOFError, OSError):  # the parent is gone or stopped listening: nothing left to do
        return


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process, self.conn = process, conn


def ordered_map(work: Callable[[Any], Any], tasks: Iterable[Any], jobs: int) -> Generator[Any, None, None]:
    """work(task) for every task, in `jobs` forked worker processes, the results in the tasks'
    order. `work` and what it reads are the parent's as they are when this starts (fork); a task
    and a result travel through a pipe (pickled). An exception `work` raises is raised here."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    pending = iter(tasks)
    order: list[_Worker] = []  # the workers with a task, oldest first
    finished = False
    try:
        for _ in range(jobs):
            task = next(pending, None)
            if task is None:
                break
            worker = _start(ctx, work, workers)
            worker.conn.send(task)
            order.append(worker)
        while order:
            worker = order.pop(0)
            if worker.conn not in wait([worker.conn, worker.process.sentinel]):
                raise _lost(worker)
            try:
                result = worker.conn.recv()
            except (EOFError, OSError):
                raise _lost(worker) from None
            task = next(pending, None)
            if task is not None:  # the worker is idle and listening: this send cannot block on it
                worker.conn.send(task)
                order.append(worker)
            if isinstance(result, _Failed):
                raise result.error
            yield result
        finished = True
    finally:
        _stop(workers, gently=finished)


def _start(ctx: Any, work: Callable[[Any], Any], workers: list[_Worker]) -> _Worker:
    """Fork one worker with SIGINT blocked, so that it ignores Ctrl-C from its first instant."""
    parent_end, child_end = ctx.Pipe(duplex=True)
    inherited = [w.conn for w in workers] + [parent_end]
    process = ctx.Process(target=_serve, args=(child_end, work, inherited), daemon=True)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        try:
            process.start()
        except OSError as e:  # no more processes, no memory to fork
            parent_end.close()
            raise WorkerLost(f"cannot start a sweep worker process ({e.strerror or e}); run again, or with -j 1") from None
        worker = _Worker(process, parent_end)
        workers.append(worker)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C that came meanwhile is raised here, after the worker is known
        child_end.close()
    return worker


def _stop(workers: list[_Worker], gently: bool) -> None:
    """End every worker: told to stop when the work is done, else killed; each reaped within JOIN_SECONDS."""
    for worker in workers:
        try:
            if gently:
                worker.conn.send(None)
            else:
                worker.process.kill()
        except (OSError, ValueError):
            pass
    for worker in workers:
        worker.process.join(JOIN_SECONDS)
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join(JOIN_SECONDS)
        worker.conn.close()


def _lost(worker: _Worker) -> WorkerLost:
    worker.process.join(JOIN_SECONDS)
    code = worker.process.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"ended (status {code})"
    return WorkerLost(f"a sweep worker process (pid {worker.process.pid}) {how} before it answered; run again, or with -j 1")


__all__ = ["JOIN_SECONDS", "WorkerLost", "ordered_map"]
