"""Hold a lease while work runs: renew it in the background, notice when it is lost.

``hold(backend, name, ttl)`` takes the lock (or yields None when someone else holds it). While
the block runs, a task renews the lease every ``renew_interval`` seconds. The lease counts as lost
when the backend says it is no longer ours (expired, deleted, taken over) or when no renewal has
succeeded for a whole TTL (measured on the monotonic clock: wall-clock jumps change nothing).
Loss is logged once and the ``lost`` flag set; the work checks it at its safe points
(``ensure_held``) and stops there. Leaving the block stops renewing and releases the lock, and a
release that finds the lock already gone is logged, never raised.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from ..observability.logs import get_logger
from . import Lease, LockBackend, LockLost, LockUnavailable

logger = get_logger(__name__)


class HeldLock:
    def __init__(self, backend: LockBackend, lease: Lease, renew_interval: float) -> None:
        self.backend = backend
        self.lease = lease
        self.renew_interval = renew_interval
        self.renewals = 0
        self._lost_reason: str | None = None
        self._last_renewed = time.monotonic()
        self._done = asyncio.Event()

    @property
    def fencing_token(self) -> int:
        return self.lease.fencing_token

    @property
    def lost(self) -> bool:
        if self._lost_reason is None and self._expired():
            self._mark_lost("no successful renewal within the TTL")
        return self._lost_reason is not None

    def ensure_held(self) -> None:
        """A safe point: raise LockLost when the lease is gone."""
        if self.lost:
            raise LockLost(f"lock {self.lease.name!r} lost: {self._lost_reason}")

    def _expired(self) -> bool:
        return time.monotonic() - self._last_renewed >= self.lease.ttl_seconds

    def _mark_lost(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
            logger.error(
                "lock lost",
                lock=self.lease.name,
                fencing_token=self.lease.fencing_token,
                reason=reason,
            )

    def stop_renewing(self) -> None:
        self._done.set()

    async def keep_renewed(self) -> None:
        while self._lost_reason is None:
            # Wake up to renew, or to stop: never cancelled mid-command, which would leave the
            # backend's connection in an unknown state just before the release.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=self.renew_interval)
            if self._done.is_set():
                return
            if self._expired():
                self._mark_lost("no successful renewal within the TTL")
                return
            began = time.monotonic()
            try:
                still_ours = await self.backend.renew(self.lease)
            except LockUnavailable as exc:
                # Keep trying until the TTL runs out: a short outage need not stop the job.
                logger.warning(
                    "lock renewal failed, retrying", lock=self.lease.name, error=str(exc)
                )
                continue
            if not still_ours:
                self._mark_lost("the lock expired or was taken over")
                return
            self._last_renewed = began
            self.renewals += 1


@asynccontextmanager
async def hold(
    backend: LockBackend, name: str, ttl_seconds: float, renew_interval: float
) -> AsyncIterator[HeldLock | None]:
    lease = await backend.acquire(name, ttl_seconds)
    if lease is None:
        yield None
        return
    held = HeldLock(backend, lease, renew_interval)
    renewer = asyncio.create_task(held.keep_renewed(), name=f"renew-lock-{name}")
    try:
        yield held
    finally:
        held.stop_renewing()
        try:
            await renewer
        except asyncio.CancelledError:
            renewer.cancel()  # we are being cancelled ourselves: stop the renewer too
            raise
        try:
            released = await backend.release(lease)
        except LockUnavailable as exc:
            # The lease runs out by itself within the TTL.
            logger.warning("lock release failed; it expires by itself", lock=name, error=str(exc))
        else:
            if not released:
                logger.warning(
                    "lock was no longer ours at release",
                    lock=name,
                    fencing_token=lease.fencing_token,
                )
