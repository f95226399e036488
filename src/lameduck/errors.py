"""Every exception lameduck raises, in one tree.

::

    LameduckError
    ├── ConfigError           a setting is invalid; message names the setting and the allowed range
    │   └── BudgetError       the parts of the shutdown do not fit in the grace period; message shows the sum
    ├── AppLoadError          MODULE:ATTR could not be imported or is not an ASGI app (local blame: fix the path)
    ├── StartupError          the app's lifespan startup failed or a startup check never passed
    ├── LifecycleError        an illegal transition of the lifecycle core (a bug in lameduck, not in the app)
    ├── NotRunningError       a runtime API (spawn, time_left, ...) was used outside a running lameduck service
    ├── ShuttingDownError     background work was submitted once cleanup had begun; it would race the hooks
    ├── BrokerError           a queue backend (database or broker) failed or is unreachable; nothing was lost
    ├── JobCancelledError     raised by ``job.token.raise_if_cancelled()`` inside a sync handler being stopped
    └── ManifestError         ``lameduck k8s check`` cannot read its input: file, line and column of the problem

The library raises these; only the CLI turns them into exit codes (see ``lameduck.core.outcome``).
"""

from __future__ import annotations


class LameduckError(Exception):
    """Base class of every error raised by lameduck."""


class ConfigError(LameduckError):
    """A setting is out of range or malformed.

    ``setting`` is the user-facing name (``--drain-timeout``) so the CLI can print a one-line message.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class BudgetError(ConfigError):
    """The shutdown phases add up to more than the grace period the platform gives."""


class AppLoadError(LameduckError):
    """The application could not be imported; the message says which part of MODULE:ATTR is wrong."""


class StartupError(LameduckError):
    """The application failed to start (lifespan startup failed, or startup timed out)."""


class LifecycleError(LameduckError):
    """An event arrived in a phase where it is not allowed. Always a lameduck bug: please report it."""


class NotRunningError(LameduckError):
    """A runtime API was called while no lameduck service is running in this process.

    Consider checking ``lameduck.is_running()`` first, or call it from code that runs under ``lameduck serve``.
    """


class ShuttingDownError(LameduckError):
    """Background work was submitted once cleanup had begun (after the drain); it would race the hooks."""


class BrokerError(LameduckError):
    """A queue backend failed: the database or broker is unreachable or refused an operation.

    Raised after the retries the budget allows. Nothing is acknowledged that did not complete, so the job it
    concerned runs again once its lease expires (or at once, where the broker requeues on disconnect).
    """


class JobCancelledError(LameduckError):
    """Raised by ``job.token.raise_if_cancelled()``: the drain deadline or the job's timeout passed.

    Sync handlers run in threads that Python cannot interrupt; they check the token between steps and let this
    propagate so that their job is released (drain) or retried (timeout) instead of completed.
    """


class ManifestError(LameduckError):
    """A manifest or Dockerfile could not be read or parsed; nothing was checked.

    ``line`` and ``column`` are 1-based (0 when the problem has no position, e.g. a missing file). ``str()`` is the
    one-line message the CLI prints: ``deploy.yaml:12:5: mapping values are not allowed here``.
    """

    def __init__(self, source: str, message: str, line: int = 0, column: int = 0) -> None:
        where = f"{source}:{line}:{column}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.message = message
        self.line = line
        self.column = column
