"""lameduck: SIGTERM becomes a disciplined, bounded shutdown for Python ASGI services.

Run ``lameduck serve MODULE:ATTR`` or ``lameduck.run(app)``; from application code, use ``time_left()`` /
``drain_deadline()`` to bound outbound calls, ``spawn()`` for background work the drain waits for,
``on_cleanup`` for teardown, and the ``*_check`` decorators for probes.
"""

from lameduck._version import __version__
from lameduck.asgi.middleware import LameduckMiddleware
from lameduck.asgi.standalone import wrap
from lameduck.config import Settings
from lameduck.core.budget import Budget
from lameduck.core.ledger import Kind
from lameduck.core.outcome import ExitCode, Outcome
from lameduck.core.phases import Phase
from lameduck.errors import (
    AppLoadError,
    BudgetError,
    ConfigError,
    LameduckError,
    LifecycleError,
    NotRunningError,
    ShuttingDownError,
    StartupError,
)
from lameduck.runtime.api import (
    drain_deadline,
    is_draining,
    is_running,
    liveness_check,
    on_cleanup,
    readiness_check,
    request_stop,
    spawn,
    startup_check,
    time_left,
    wait_draining,
)
from lameduck.serve import run

__all__ = [
    "AppLoadError",
    "Budget",
    "BudgetError",
    "ConfigError",
    "ExitCode",
    "Kind",
    "LameduckError",
    "LameduckMiddleware",
    "LifecycleError",
    "NotRunningError",
    "Outcome",
    "Phase",
    "Settings",
    "ShuttingDownError",
    "StartupError",
    "__version__",
    "drain_deadline",
    "is_draining",
    "is_running",
    "liveness_check",
    "on_cleanup",
    "readiness_check",
    "request_stop",
    "run",
    "spawn",
    "startup_check",
    "time_left",
    "wait_draining",
    "wrap",
]
