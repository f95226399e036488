"""The haproxy.cfg that ``lameduck rollout`` writes, line by line (HAProxy itself checks it in the integration test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lameduck.errors import ConfigError, LameduckError
from lameduck.verify import haproxy
from lameduck.verify.haproxy import HAProxyConfig, HAProxyMissingError, find_haproxy

SOCKET = "/run/lb/admin.sock"


def lines(config: HAProxyConfig) -> list[str]:
    return [line.strip() for line in config.render(SOCKET).splitlines() if line.strip()]


def test_tcp_mode_renders_kube_proxy_like_balancing_with_http_readiness_checks() -> None:
    assert lines(HAProxyConfig(mode="tcp", port=8080)) == [
        "# Written by lameduck (verify/haproxy.py) for one rollout; HAProxy runs in the foreground (-db).",
        "global",
        "stats socket /run/lb/admin.sock mode 600 level admin",
        "stats timeout 10s",
        "maxconn 4096",
        "defaults",
        "mode tcp",
        "maxconn 4096",
        "timeout connect 1000ms",
        "timeout client 30000ms",
        "timeout server 30000ms",
        "retries 3",
        "option redispatch",
        "frontend fe",
        "bind 127.0.0.1:8080",
        "default_backend be",
        "backend be",
        "balance roundrobin",
        "option httpchk",
        "http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host localhost",
        "http-check expect status 200-299",
    ]


def test_http_mode_adds_keep_alive_and_connection_reuse() -> None:
    tcp = lines(HAProxyConfig(mode="tcp", port=8080))
    http = lines(HAProxyConfig(mode="http", port=8080))
    assert [line for line in http if line not in tcp] == [
        "mode http",
        "option http-keep-alive",
        "http-reuse safe",
        "retry-on conn-failure",
    ]
    assert [line for line in tcp if line not in http] == ["mode tcp"]


def test_settings_reach_the_config() -> None:
    config = HAProxyConfig(
        mode="http",
        port=9000,
        check_path="/ready",
        connect_timeout=0.25,
        client_timeout=5,
        server_timeout=6.5,
        maxconn=100,
        retries=0,
        redispatch=False,
        http_reuse="never",
    )
    text = lines(config)
    for expected in (
        "bind 127.0.0.1:9000",
        "http-check send meth GET uri /ready ver HTTP/1.1 hdr Host localhost",
        "timeout connect 250ms",
        "timeout client 5000ms",
        "timeout server 6500ms",
        "maxconn 100",
        "retries 0",
        "no option redispatch",
        "http-reuse never",
    ):
        assert expected in text


def test_dynamic_servers_get_their_check_settings_explicitly() -> None:
    """Dynamic servers inherit nothing from default-server in HAProxy 2.6: every check keyword is on the line."""
    default = HAProxyConfig(mode="tcp", port=8080)
    assert default.server_options() == "check inter 1000ms downinter 100ms rise 1 fall 3"
    assert default.server_options(check_port=9001) == "check inter 1000ms downinter 100ms rise 1 fall 3 port 9001"
    # downinter never exceeds inter: a down server is not checked less often than an up one.
    fast = HAProxyConfig(mode="tcp", port=8080, check_interval=0.05, rise=2, fall=5)
    assert fast.server_options() == "check inter 50ms downinter 50ms rise 2 fall 5"


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"mode": "udp"}, "--lb"),
        ({"port": 0}, "HAProxyConfig.port"),
        ({"port": 70000}, "HAProxyConfig.port"),
        ({"check_path": "health"}, "HAProxyConfig.check_path"),
        ({"check_path": "/a b"}, "HAProxyConfig.check_path"),
        ({"check_interval": 0}, "HAProxyConfig"),
        ({"fall": 0}, "HAProxyConfig"),
        ({"retries": -1}, "HAProxyConfig"),
    ],
)
def test_invalid_settings_are_config_errors(settings: dict[str, object], setting: str) -> None:
    arguments: dict[str, object] = {"mode": "tcp", "port": 8080, **settings}
    with pytest.raises(ConfigError) as raised:
        HAProxyConfig(**arguments)  # type: ignore[arg-type]  # deliberately wrong values
    assert raised.value.setting == setting


def test_missing_haproxy_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(haproxy, "_CANDIDATES", (str(tmp_path / "haproxy"),))
    with pytest.raises(HAProxyMissingError) as raised:
        find_haproxy()
    assert isinstance(raised.value, LameduckError)
    assert str(raised.value) == (
        "haproxy not found on PATH; install it: apt-get install -y haproxy (Debian/Ubuntu), dnf install haproxy, "
        "or brew install haproxy"
    )


def test_haproxy_outside_path_is_found_in_sbin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(haproxy, "_CANDIDATES", (str(tmp_path / "missing"), str(fake)))
    assert find_haproxy() == str(fake)
