"""The ASGI stack lameduck puts around an app, shared by ``lameduck serve`` and ``lameduck.wrap``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lameduck.asgi.lifespan import Lifespan
from lameduck.asgi.middleware import LameduckMiddleware
from lameduck.asgi.probes import Probes
from lameduck.asgi.types import ASGIApp
from lameduck.config import Settings
from lameduck.runtime.driver import Driver


@dataclass(frozen=True, slots=True)
class Stack:
    driver: Driver
    lifespan: Lifespan
    probes: Probes
    middleware: LameduckMiddleware

    async def startup(self) -> None:
        """The app's lifespan startup; once it completed, its shutdown becomes a cleanup step.

        Registered now, it runs before the hooks registered at import time and after those registered later.
        """
        await self.lifespan.startup()
        if self.lifespan.started:
            self.driver.add_late_hook("lifespan.shutdown", self.lifespan.shutdown, None)


def build(
    app: ASGIApp, driver: Driver, settings: Settings, *, probes_on_app_port: bool, state: dict[str, Any] | None = None
) -> Stack:
    """Wrap ``app`` for ``driver``; ``state`` is the lifespan state dict the server hands to requests."""
    lifespan = Lifespan(app, state=state)
    probes = Probes(driver, settings)
    middleware = LameduckMiddleware(app, driver, probes=probes if probes_on_app_port else None)
    return Stack(driver, lifespan, probes, middleware)
