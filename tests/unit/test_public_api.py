"""A deliberate public surface: a sorted ``__all__`` that names every public object, and one exception tree."""

from __future__ import annotations

import inspect
import types

import pytest

import lameduck
import lameduck.errors
from lameduck.errors import BudgetError, ConfigError, LameduckError

ERROR_CLASSES = sorted(
    (
        obj
        for obj in vars(lameduck.errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == "lameduck.errors"
    ),
    key=lambda cls: cls.__name__,
)


def test_all_is_sorted() -> None:
    assert lameduck.__all__ == sorted(lameduck.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(lameduck.__all__)) == len(lameduck.__all__)


@pytest.mark.parametrize("name", lameduck.__all__)
def test_every_name_in_all_exists(name: str) -> None:
    assert hasattr(lameduck, name), f"lameduck.__all__ names {name!r}, which lameduck does not define"


def test_every_public_object_from_lameduck_is_exported() -> None:
    missing = []
    for name, obj in vars(lameduck).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        if not (callable(obj) or inspect.isclass(obj)):
            continue
        if (getattr(obj, "__module__", None) or "").split(".")[0] == "lameduck" and name not in lameduck.__all__:
            missing.append(name)
    assert missing == [], f"public names in lameduck missing from __all__: {missing}"


def test_the_version_is_exported_as_a_string() -> None:
    assert "__version__" in lameduck.__all__
    assert isinstance(lameduck.__version__, str)
    assert lameduck.__version__.count(".") >= 2


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from lameduck import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(lameduck.__all__)


def test_the_errors_module_defines_the_expected_tree() -> None:
    assert [cls.__name__ for cls in ERROR_CLASSES] == [
        "AppLoadError",
        "BrokerError",
        "BudgetError",
        "ConfigError",
        "JobCancelledError",
        "LameduckError",
        "LifecycleError",
        "ManifestError",
        "NotRunningError",
        "ShuttingDownError",
        "StartupError",
    ]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_subclasses_lameduck_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, LameduckError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_exported_and_drawn_in_the_docstring(cls: type[BaseException]) -> None:
    assert cls.__name__ in lameduck.__all__
    assert getattr(lameduck, cls.__name__) is cls
    assert lameduck.errors.__doc__ is not None
    assert cls.__name__ in lameduck.errors.__doc__


def test_budget_error_is_a_config_error() -> None:
    assert issubclass(BudgetError, ConfigError)
    assert BudgetError.__mro__[1] is ConfigError


def test_config_error_message_starts_with_the_setting() -> None:
    error = ConfigError("--port", "must be 0..65535 (got 'abc')")
    assert str(error) == "--port: must be 0..65535 (got 'abc')"
    assert error.setting == "--port"
    budget = BudgetError("--grace", "too short")
    assert str(budget) == "--grace: too short"
    assert budget.setting == "--grace"
