"""gRPC client targets: a plain HOST:PORT or a name-resolver URI.

A resolver URI such as dns:///inference:50051 lets one channel see every
address behind a name (several replicas), which round-robin balancing needs;
a plain HOST:PORT is what people type. Both the gateway's upstream setting
and the CLI's --gateway accept either, checked the same way at start.
"""

from __future__ import annotations

from collections.abc import Mapping

from dualnova.server.settings import ConfigError, check_address, read_str

__all__ = ["RESOLVER_SCHEMES", "check_target", "read_target"]

# Name resolvers built into gRPC core that take an address after the scheme.
RESOLVER_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock", "xds")


def check_target(value: str, name: str) -> None:
    """Raise ConfigError naming `name` unless `value` is HOST:PORT or scheme:address."""
    scheme, sep, rest = value.partition(":")
    if sep and scheme in RESOLVER_SCHEMES:
        address = rest[2:].partition("/")[2] if rest.startswith("//") else rest
        if address:
            return
        raise ConfigError(
            f"{name}={value!r}: no address after '{scheme}:', e.g. {scheme}:///inference:50051"
        )
    try:
        check_address(value, name)
    except ConfigError:
        raise ConfigError(
            f"{name}={value!r}: expected HOST:PORT or a gRPC target such as dns:///inference:50051"
        ) from None


def read_target(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's gRPC target, checked; `default` when unset."""
    value = read_str(env, name, default)
    check_target(value, name)
    return value
