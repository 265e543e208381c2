"""The shape every scheduler component shares: a ``tick()`` run on an interval by the leader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from atp.core.errors import AtpError, FencedOut
from atp.core.ports import Clock, Fence

__all__ = ["Component", "Leadership", "NotLeading"]

log = logging.getLogger("atp.scheduler")


class NotLeading(Exception):
    """The leader lease ran out under a running component; the elector is about to notice."""


@dataclass(frozen=True, slots=True)
class Leadership:
    """What a component needs of the leader it runs under."""

    fence: Callable[[], Fence]
    """The current lease's fencing token, for leader-only writes; NotLeading once it ran out."""
    fenced_out: Callable[[], None]
    """Tells the leader that a write was fenced out, so it steps down."""


class Component:
    """Runs ``tick()`` every ``interval`` while its leader holds the lease.

    ``tick`` returns True when it did a full batch, so the next one follows at once. An
    error is logged and the loop carries on; FencedOut tells the elector to step down.
    """

    name = "component"

    def __init__(
        self,
        clock: Clock,
        interval: float,
        leader: Leadership,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._fence = leader.fence
        self._on_fenced = leader.fenced_out

    async def tick(self) -> bool:
        """Do one round of work; return True when more is waiting."""
        raise NotImplementedError  # pragma: no cover - every component defines it

    def pause(self) -> float:
        """Seconds to wait before the next tick, when the last one was not a full batch."""
        return self._interval

    async def close(self) -> None:
        """Hand back what the component holds; called once ``run`` stops ticking."""

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set, then ``close``."""
        while not stop.is_set():
            if await self._safe_tick():
                await asyncio.sleep(0)  # a full batch: go again, but let others run
                continue
            await self._clock.wait(stop, self.pause())
        await self.close()

    async def _safe_tick(self) -> bool:
        try:
            return await self.tick()
        except NotLeading:
            log.info("%s: the leader lease ran out, skipping the tick", self.name)
        except FencedOut as exc:
            log.error("%s: fenced out, stepping down: %s", self.name, exc)
            self._on_fenced()
        except AtpError as exc:
            log.warning("%s: tick failed, will retry: %s", self.name, exc)
        except Exception:
            log.exception("%s: tick crashed, will retry", self.name)
        return False
