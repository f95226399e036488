"""lameduck: SIGTERM becomes a disciplined, bounded shutdown for Python ASGI services and queue workers.

Run ``lameduck serve MODULE:ATTR`` or ``lameduck.run(app)``, ``lameduck work MODULE:ATTR`` for a ``Worker``
(``enqueue`` puts jobs on its queues); from application code, use ``time_left()`` /
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
    BrokerError,
    BudgetError,
    ConfigError,
    JobCancelledError,
    LameduckError,
    LifecycleError,
    ManifestError,
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
from lameduck.workers.job import CancelToken, Job
from lameduck.workers.producer import Producer, enqueue
from lameduck.workers.worker import Worker

__all__ = [
    "AppLoadError",
    "BrokerError",
    "Budget",
    "BudgetError",
    "CancelToken",
    "ConfigError",
    "ExitCode",
    "Job",
    "JobCancelledError",
    "Kind",
    "LameduckError",
    "LameduckMiddleware",
    "LifecycleError",
    "ManifestError",
    "NotRunningError",
    "Outcome",
    "Phase",
    "Producer",
    "Settings",
    "ShuttingDownError",
    "StartupError",
    "Worker",
    "__version__",
    "drain_deadline",
    "enqueue",
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
