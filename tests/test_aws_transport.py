"""The async AWS transport's own rules, where no process is needed to show them."""

from __future__ import annotations

import pytest

from inference_service.bedrock.transport import proxy_for

RUNTIME = "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_no_proxy_unless_the_environment_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for(RUNTIME) is None


def test_https_proxy_applies_and_no_proxy_exempts_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert proxy_for(RUNTIME) == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert proxy_for(RUNTIME) is None
