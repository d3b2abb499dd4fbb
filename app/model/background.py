"""One background job at a time on a thread of its own. Refits, consolidation passes and
evaluations run there so the folding loop never waits for them; the owner polls `finished()`
from its own loop and decides there what a result means."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Job(Protocol):
    @property
    def future(self) -> Future[Any]: ...


J = TypeVar("J", bound=Job)


class BackgroundRunner(Generic[J]):
    """Holds the job (`job`) from its start until the owner takes it, done, from `finished()`."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._executor: ThreadPoolExecutor | None = None
        self.job: J | None = None

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run fn(*args, **kwargs) on the thread (started on first use); the caller wraps the
        future in its job and sets `job`."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        return self._executor.submit(fn, *args, **kwargs)

    @property
    def running(self) -> bool:
        """Whether a job runs or waits for its owner to take it."""
        return self.job is not None

    def finished(self) -> J | None:
        """The job, once it is done (it is then no longer held)."""
        job = self.job
        if job is None or not job.future.done():
            return None
        self.job = None
        return job

    def close(self) -> None:
        """Stop the thread; a running job is abandoned (its result is never taken)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.job = None
