"""Settings.load: one table gives defaults, env parsing and validation; errors name the flag and the range."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lameduck.config import BY_NAME, ENV_PREFIX, SETTINGS, Settings
from lameduck.core.budget import Budget
from lameduck.errors import BudgetError, ConfigError

K8S = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}


def test_defaults() -> None:
    settings = Settings.load()
    assert settings == Settings()
    assert settings.app is None
    assert settings.factory is False
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.grace == 30.0
    assert settings.lame_duck is None  # auto
    assert settings.drain_timeout is None  # auto
    assert settings.cleanup_timeout == 3.0
    assert settings.startup_timeout == 60.0
    assert settings.probe_port is None
    assert settings.probe_host is None
    assert (settings.live_path, settings.ready_path, settings.startup_path) == (
        "/health/live",
        "/health/ready",
        "/health/startup",
    )
    assert settings.probe_verbose is False
    assert settings.watchdog == 10.0
    assert settings.keep_alive_timeout == 5
    assert settings.backlog == 2048
    assert (settings.http, settings.loop, settings.access_log) == ("auto", "auto", False)
    assert (settings.log_format, settings.log_level) == ("text", "info")
    assert settings.in_kubernetes is False
    assert settings.probes_on_app_port() is True
    assert settings.budget() == Budget.plan(grace=30, lame_duck=0)


def test_load_reads_only_the_env_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMEDUCK_PORT", "9999")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    settings = Settings.load()
    assert settings.port == 8000
    assert settings.in_kubernetes is False


def test_flag_beats_env_var() -> None:
    settings = Settings.load({"port": "9000"}, {"LAMEDUCK_PORT": "7000"})
    assert settings.port == 9000


def test_env_var_is_used_when_no_flag_is_given() -> None:
    assert Settings.load({}, {"LAMEDUCK_PORT": "7000"}).port == 7000
    assert Settings.load({"port": None}, {"LAMEDUCK_PORT": "7000"}).port == 7000  # argparse's "not given"


def test_values_are_parsed_from_strings_and_keywords_alike() -> None:
    from_strings = Settings.load({"port": "0", "grace": "10", "drain_timeout": "4.5", "backlog": "128"})
    from_keywords = Settings.load({"port": 0, "grace": 10, "drain_timeout": 4.5, "backlog": 128})
    assert from_strings == from_keywords
    assert (from_strings.port, from_strings.grace, from_strings.drain_timeout) == (0, 10.0, 4.5)


def test_integral_float_is_accepted_for_an_integer_setting() -> None:
    # _integer rejects only non-integral floats, so 8000.0 is meant to be 8000.
    assert Settings.load({"port": 8000.0}).port == 8000


def test_env_values_are_stripped_and_case_insensitive_for_choices() -> None:
    settings = Settings.load({}, {"LAMEDUCK_LOG_FORMAT": " JSON ", "LAMEDUCK_HOST": " 0.0.0.0 "})
    assert settings.log_format == "json"
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"port": "abc"}, "--port"),
        ({"port": 70000}, "--port"),
        ({"port": "-1"}, "--port"),
        ({"port": True}, "--port"),
        ({"grace": 0}, "--grace"),
        ({"grace": "x"}, "--grace"),
        ({"grace": "inf"}, "--grace"),
        ({"grace": "nan"}, "--grace"),
        ({"grace": 3601}, "--grace"),
        ({"lame_duck": -1}, "--lame-duck"),
        ({"lame_duck": "soon"}, "--lame-duck"),
        ({"drain_timeout": -1}, "--drain-timeout"),
        ({"cleanup_timeout": 601}, "--cleanup-timeout"),
        ({"startup_timeout": 0}, "--startup-timeout"),
        ({"probe_port": 65536}, "--probe-port"),
        ({"watchdog": -0.1}, "--watchdog"),
        ({"keep_alive_timeout": 0}, "--keep-alive-timeout"),
        ({"keep_alive_timeout": 2.5}, "--keep-alive-timeout"),
        ({"backlog": 0}, "--backlog"),
        ({"http": "h2"}, "--http"),
        ({"loop": "trio"}, "--loop"),
        ({"log_format": "xml"}, "--log-format"),
        ({"log_level": "trace"}, "--log-level"),
        ({"live_path": "health"}, "--live-path"),
        ({"ready_path": "/ready now"}, "--ready-path"),
        ({"startup_path": "/s?x=1"}, "--startup-path"),
        ({"factory": "maybe"}, "--factory"),
        ({"host": "  "}, "--host"),
        ({"app": ""}, "APP"),
    ],
)
def test_invalid_flag_value_names_the_flag_and_the_allowed_range(values: dict[str, Any], flag: str) -> None:
    (name,) = values
    with pytest.raises(ConfigError) as info:
        Settings.load(values)
    message = str(info.value)
    assert message == f"{flag}: must be {BY_NAME[name].allowed} (got {values[name]!r})"
    assert info.value.setting == flag


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"port": "abc"}, "--port: must be 0..65535 (got 'abc')"),
        ({"port": 70000}, "--port: must be 0..65535 (got 70000)"),
        ({"grace": 0}, "--grace: must be 0.001 ≤ s ≤ 3600 (got 0)"),
        ({"grace": "x"}, "--grace: must be 0.001 ≤ s ≤ 3600 (got 'x')"),
        ({"lame_duck": -1}, "--lame-duck: must be auto or 0 ≤ s ≤ grace (got -1)"),
        ({"log_format": "xml"}, "--log-format: must be text|json (got 'xml')"),
    ],
)
def test_invalid_values_exact_messages(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(values)
    assert str(info.value) == expected


def test_lame_duck_longer_than_grace_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({"lame_duck": 40})
    assert str(info.value) == "--lame-duck: must be auto or 0 ≤ s ≤ grace 30 (got 40)"
    assert not isinstance(info.value, BudgetError)


def test_probe_port_equal_to_port_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({"port": "8080", "probe_port": "8080"})
    assert str(info.value) == "--probe-port: must differ from --port (both 8080)"


def test_probe_port_zero_may_equal_port_zero() -> None:
    # Both pick a free port, so they cannot collide.
    settings = Settings.load({"port": 0, "probe_port": 0})
    assert (settings.port, settings.probe_port) == (0, 0)
    assert settings.probes_on_app_port() is False


def test_probe_port_from_an_empty_env_var_means_none() -> None:
    assert Settings.load({}, {"LAMEDUCK_PROBE_PORT": ""}).probe_port is None


def test_duplicate_probe_paths_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({"ready_path": "/health/live"})
    assert (
        str(info.value) == "--live-path: probe paths must be distinct (got /health/live, /health/live, /health/startup)"
    )


def test_drain_timeout_too_big_is_a_budget_error_with_the_sum() -> None:
    with pytest.raises(BudgetError) as info:
        Settings.load({"drain_timeout": "40"})
    assert str(info.value) == (
        "--drain-timeout: lame-duck 0 + drain 40 + cleanup 3 + margin 2 = 45 > grace 30; lower --drain-timeout to ≤ 25"
    )


def test_drain_timeout_too_big_under_kubernetes_counts_the_lame_duck_window() -> None:
    with pytest.raises(BudgetError) as info:
        Settings.load({"drain_timeout": "40"}, K8S)
    assert str(info.value) == (
        "--drain-timeout: lame-duck 5 + drain 40 + cleanup 3 + margin 2 = 50 > grace 30; lower --drain-timeout to ≤ 20"
    )


def test_drain_timeout_above_its_upper_bound_names_that_bound() -> None:
    # The parser refuses drain_timeout > 3600; a message "must be auto or 0 ≤ s (got '4000')" contradicts itself.
    with pytest.raises(ConfigError) as info:
        Settings.load({"drain_timeout": "4000", "grace": "3600"})
    assert str(info.value).startswith("--drain-timeout: ")
    assert "3600" in str(info.value)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({"prot": 8000})
    assert str(info.value).startswith("prot: unknown setting (known: app, factory, host, port, grace, ")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LAMEDUCK_PORT": "abc"}, "--port (LAMEDUCK_PORT): must be 0..65535 (got 'abc')"),
        ({"LAMEDUCK_GRACE": "-5"}, "--grace (LAMEDUCK_GRACE): must be 0.001 ≤ s ≤ 3600 (got '-5')"),
        ({"LAMEDUCK_LAME_DUCK": "-1"}, "--lame-duck (LAMEDUCK_LAME_DUCK): must be auto or 0 ≤ s ≤ grace (got '-1')"),
        ({"LAMEDUCK_ACCESS_LOG": "maybe"}, "--access-log (LAMEDUCK_ACCESS_LOG): must be on/off (got 'maybe')"),
        ({"LAMEDUCK_APP": " "}, "APP (LAMEDUCK_APP): must be MODULE:ATTR (got ' ')"),
    ],
)
def test_invalid_env_var_names_both_flag_and_env_var(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({}, env)
    assert str(info.value) == expected


def test_an_invalid_env_var_is_not_reported_when_the_flag_overrides_it() -> None:
    assert Settings.load({"port": "9000"}, {"LAMEDUCK_PORT": "abc"}).port == 9000


def test_lame_duck_auto_is_five_seconds_under_kubernetes() -> None:
    settings = Settings.load({}, K8S)
    assert settings.in_kubernetes is True
    assert settings.lame_duck is None
    assert settings.lame_duck_seconds == 5.0
    assert settings.budget().lame_duck == 5.0
    assert settings.budget().drain == 20.0
    assert settings.lame_duck_reason() == "auto: KUBERNETES_SERVICE_HOST is set, so 5 s for endpoint removal"


def test_lame_duck_auto_is_zero_outside_kubernetes() -> None:
    for env in ({}, {"KUBERNETES_SERVICE_HOST": ""}):
        settings = Settings.load({"lame_duck": "auto"}, env)
        assert settings.in_kubernetes is False
        assert settings.lame_duck_seconds == 0.0
        assert settings.budget().drain == 25.0
        assert settings.lame_duck_reason() == "auto: not under Kubernetes, so 0 s"


def test_explicit_lame_duck_wins_over_kubernetes_auto() -> None:
    settings = Settings.load({"lame_duck": "0"}, K8S)
    assert settings.lame_duck == 0.0
    assert settings.lame_duck_seconds == 0.0
    assert settings.budget().drain == 25.0
    assert settings.lame_duck_reason() == "set explicitly"


def test_lame_duck_from_env_auto_and_number() -> None:
    assert Settings.load({}, {**K8S, "LAMEDUCK_LAME_DUCK": "AUTO"}).lame_duck_seconds == 5.0
    assert Settings.load({}, {"LAMEDUCK_LAME_DUCK": "2.5"}).lame_duck_seconds == 2.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("on", True),
        ("off", False),
        ("yes", True),
        ("no", False),
        ("TRUE", True),
        (" Off ", False),
    ],
)
def test_booleans_from_env(raw: str, expected: bool) -> None:
    settings = Settings.load({}, {"LAMEDUCK_ACCESS_LOG": raw, "LAMEDUCK_PROBE_VERBOSE": raw})
    assert settings.access_log is expected
    assert settings.probe_verbose is expected


@pytest.mark.parametrize("value", [True, False])
def test_boolean_flags_beat_env(value: bool) -> None:
    env = {"LAMEDUCK_FACTORY": "off" if value else "on"}
    assert Settings.load({"factory": value}, env).factory is value


def test_every_setting_has_a_unique_flag_and_an_env_var_derived_from_its_name() -> None:
    flags = [s.flag for s in SETTINGS]
    envs = [s.env for s in SETTINGS]
    assert len(set(flags)) == len(flags) == len(SETTINGS)
    assert len(set(envs)) == len(envs) == len(SETTINGS)
    assert ENV_PREFIX == "LAMEDUCK_"
    for s in SETTINGS:
        assert s.env == f"LAMEDUCK_{s.name.upper()}"
        assert re.fullmatch(r"LAMEDUCK_[A-Z][A-Z0-9_]*", s.env), s.env
        if s.positional:
            assert s.flag == s.name.upper()
        else:
            assert s.flag == "--" + s.name.replace("_", "-")
            assert re.fullmatch(r"--[a-z][a-z0-9-]*", s.flag), s.flag


def test_settings_table_and_dataclass_agree() -> None:
    assert list(BY_NAME) == [s.name for s in SETTINGS]
    assert [s.name for s in SETTINGS if s.positional] == ["app"]
    assert {s.name for s in SETTINGS if s.boolean} == {"factory", "probe_verbose", "access_log"}


def test_every_default_passes_its_own_validation() -> None:
    # Each row's default, fed back through load as an explicit value, gives the same settings as no value.
    values = {s.name: s.default for s in SETTINGS if s.default is not None}
    assert Settings.load(values) == Settings.load()


def test_shown_defaults() -> None:
    shown = {s.name: s.shown_default for s in SETTINGS}
    assert shown["app"] == "(none)"
    assert shown["factory"] == "off"
    assert shown["grace"] == "30"
    assert shown["lame_duck"] == "auto"
    assert shown["port"] == "8000"


def test_settings_dataclass_defaults_are_the_table_defaults() -> None:
    """Settings() spells each default a second time (for typing); it must agree with SETTINGS."""
    assert Settings() == Settings.load({}, {})
