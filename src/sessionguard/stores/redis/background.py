"""One daemon thread per object, started at first use and stopped once: the
state subscriber (:class:`~.state.Subscriber`, which also runs the write-behind
tick) and the Sentinel watch (:class:`~.failover.PrimaryWatch`) are both one.

Fork safety: a process forked after a store's first use (``gunicorn
--preload`` whose app called the store, ``multiprocessing`` with ``fork``)
inherits the objects but none of their threads. In the child every
:class:`Background` forgets the parent's thread (:meth:`Background._forked`,
run by :func:`os.register_at_fork`), so the child's next store call starts its
own; one stopped in the parent stays stopped.
"""

from __future__ import annotations

import os
import threading
import weakref


class Background:
    """Runs :meth:`_run` on a daemon thread named :attr:`THREAD_NAME`, started
    again in a forked child at its next :meth:`start`. Subclasses set up
    ``_stop``, ``_lock`` and ``_thread`` with :meth:`_init_thread`."""

    THREAD_NAME = "sessionguard"

    def _init_thread(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        _LIVING.add(self)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread, once (once more in a forked child)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self.THREAD_NAME, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait for it (up to ``timeout``)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _forked(self) -> None:
        """In a forked child: the parent's thread is not running here. New
        locks too (another thread of the parent may have held them at the fork);
        a stop asked in the parent holds."""
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._lock = threading.Lock()
        self._thread = None


#: every Background of the process, for the fork hook (weakly: a closed store goes)
_LIVING: weakref.WeakSet[Background] = weakref.WeakSet()


def _after_fork() -> None:
    for background in list(_LIVING):
        background._forked()


os.register_at_fork(after_in_child=_after_fork)
