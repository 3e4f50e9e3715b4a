"""One daemon thread per object, started at first use and stopped once: the
state subscriber (:class:`~.state.Subscriber`) and the Sentinel watch
(:class:`~.failover.PrimaryWatch`) are both one."""

from __future__ import annotations

import threading


class Background:
    """Runs :meth:`_run` on a daemon thread named :attr:`THREAD_NAME`. It is not
    started again in a forked child (docs/deployment.md). Subclasses set up
    ``_stop``, ``_lock`` and ``_thread`` with :meth:`_init_thread`."""

    THREAD_NAME = "sessionguard"

    def _init_thread(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread, once."""
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
