"""Who is calling: the accepted bearer tokens, held hashed, and the current call's caller name.

No grpc import here: the config modules declare their token settings with
these readers, and a worker supervisor reads the configuration before it may
load grpc. The interceptor that checks calls is dualnova.server.auth.

Tokens come as comma-separated entries (a variable) or one entry a line (a
file): `name:token`, or a bare token. Only each token's sha256 is kept, and a
presented token is compared with every accepted digest by hmac.compare_digest,
so neither the token nor the time taken says how close a guess came. The
caller's name is what logs, spans and metrics carry, never the token: the
name given, or for a bare token `token-` and the first 8 hex digits of its
sha256 (stable across edits and restarts; 32 bits of a digest say nothing of
a token worth its name). Several tokens may share a name, which is how a
caller's token is rotated: add the new one, move the caller, drop the old.

A tokens file is re-read when it changes (its inode, size or modification
time), so a token is revoked by editing the file, without a restart. A line
that cannot be read is skipped and logged by its number, never its text; a
file that is gone accepts no token. At start the same faults stop the
program (ConfigError), so a typo is seen before anything listens.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dualnova.server.settings import ConfigError, Setting, read_optional_str

__all__ = [
    "CALLER_ATTRIBUTE",
    "CALLER_METADATA_KEY",
    "Credential",
    "Secret",
    "TokenFile",
    "TokenSource",
    "as_credentials",
    "as_secret",
    "as_token_file",
    "current_caller",
    "parse_entries",
    "relayed_name",
    "set_caller",
    "tokens_file_setting",
    "tokens_setting",
]

logger = logging.getLogger(__name__)

# Span and metric attribute, and log field (`caller`), holding the caller's name.
CALLER_ATTRIBUTE = "dualnova.caller"
# Metadata the gateway sends upstream: the name of the caller a Chat call serves.
CALLER_METADATA_KEY = "x-dualnova-caller"

# What a name may be: it goes into log lines, span and metric attributes as is.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# A token: printable ASCII without spaces or commas (what an HTTP/2 header value carries).
_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x7e]+")

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dualnova_caller", default=None
)


def current_caller() -> str | None:
    """The name of the caller the current call serves; None when nobody was identified."""
    return _caller.get()


def set_caller(name: str | None) -> contextvars.Token[str | None]:
    """Make `name` the current caller (for this task and the tasks it starts)."""
    return _caller.set(name)


def relayed_name(value: str | bytes | None) -> str | None:
    """A caller name another service sent (x-dualnova-caller), if it is a well-formed name."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    return None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Credential:
    """One accepted token: the caller's name and the token's sha256 (never the token)."""

    name: str
    sha256: bytes = field(repr=False)


class Secret:
    """A value that must never be printed: its repr and str are a placeholder."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(digest(self._value))


class _Bad(ValueError):
    """An entry that cannot be read; the message never holds the entry's text."""


def _entry(text: str) -> Credential:
    name, sep, token = text.partition(":")
    if not sep:
        name, token = "", text
    if not token or not _TOKEN.fullmatch(token):
        raise _Bad("expected name:token or a token (printable, no spaces or commas)")
    if sep and not _NAME.fullmatch(name):
        raise _Bad("the name before ':' must be letters, digits, '.', '_', '@' or '-'")
    hashed = digest(token)
    return Credential(name or f"token-{hashed.hex()[:8]}", hashed)


def parse_entries(
    entries: Iterable[str], where: str, unit: str = "entry", *, strict: bool = True
) -> tuple[Credential, ...]:
    """Credentials of `entries` (blank ones, `#` comments skipped).

    `where` names the variable (or file) in the error; `unit` is "entry" or "line".
    A bad entry is a ConfigError naming it when `strict` (at start); otherwise it
    is skipped and logged by its number, so a running server keeps serving.
    """
    credentials = []
    for number, raw in enumerate(entries, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            credentials.append(_entry(text))
        except _Bad as bad:
            if strict:
                raise ConfigError(f"{where}: {unit} {number}: {bad}") from None
            logger.error(f"{where}: {unit} {number} skipped: {bad}")
    return tuple(credentials)


def _file_identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class TokenFile:
    """A file's credentials, re-read when the file changes (checked on each read, one stat)."""

    def __init__(self, path: str, variable: str) -> None:
        self.path = path
        self._variable = variable
        self._where = f"{variable} ({path})"
        self._seen = _file_identity(path)
        try:
            with open(path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8 text"
            raise ConfigError(
                f"{variable}={path!r}: cannot read the tokens file ({reason})"
            ) from None
        self._credentials = parse_entries(lines, self._where, "line")

    def credentials(self) -> tuple[Credential, ...]:
        seen = _file_identity(self.path)
        if seen != self._seen:
            self._seen = seen
            self._credentials = self._reread()
        return self._credentials

    def _reread(self) -> tuple[Credential, ...]:
        try:
            with open(self.path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except (OSError, UnicodeDecodeError):
            logger.error(
                f"{self._where}: cannot read the tokens file; no token from it is accepted"
            )
            return ()
        credentials = parse_entries(lines, self._where, "line", strict=False)
        logger.info(f"{self._where} re-read: {len(credentials)} tokens")
        return credentials


class TokenSource:
    """The tokens a server accepts: fixed ones (a variable) and a file's, re-read as it changes."""

    def __init__(self, fixed: tuple[Credential, ...] = (), file: TokenFile | None = None) -> None:
        self._fixed = fixed
        self._file = file

    @property
    def enabled(self) -> bool:
        """Whether any token was configured: without, calls are not checked."""
        return bool(self._fixed) or self._file is not None

    def identify(self, token: str) -> str | None:
        """The caller's name for `token`; None when it is not accepted.

        Every accepted digest is compared (no early exit), each in constant time.
        """
        presented = digest(token)
        found: str | None = None
        credentials = (
            self._fixed if self._file is None else (*self._fixed, *self._file.credentials())
        )
        for credential in credentials:
            if hmac.compare_digest(credential.sha256, presented):
                found = credential.name
        return found


# ---- Setting readers and declarations -------------------------------------------------


def as_credentials(
    env: Mapping[str, str], setting: Setting[tuple[Credential, ...]]
) -> tuple[Credential, ...]:
    raw = read_optional_str(env, setting.variable)
    if raw is None:
        return setting.default
    return parse_entries(raw.split(","), setting.variable)


def as_token_file(env: Mapping[str, str], setting: Setting[str | None]) -> str | None:
    """A readable tokens file; its lines are checked at start, as the variable's are."""
    path = read_optional_str(env, setting.variable)
    if path is None:
        return setting.default
    TokenFile(path, setting.variable)
    return path


def as_secret(env: Mapping[str, str], setting: Setting[Secret | None]) -> Secret | None:
    raw = read_optional_str(env, setting.variable)
    if raw is None:
        return setting.default
    if not _TOKEN.fullmatch(raw):
        raise ConfigError(f"{setting.variable}: expected a token (printable, no spaces or commas)")
    return Secret(raw)


def tokens_setting(variable: str, option: str, who: str) -> Setting[tuple[Credential, ...]]:
    return Setting(
        variable,
        option,
        f"comma-separated bearer tokens {who} must present, each name:token or a bare token",
        default=(),
        reader=as_credentials,
        default_text="unset, no token needed",
    )


def tokens_file_setting(variable: str, option: str, who: str) -> Setting[str | None]:
    return Setting(
        variable,
        option,
        f"file of bearer tokens {who} must present, one name:token or token a line,"
        " re-read when it changes",
        default=None,
        reader=as_token_file,
        default_text="unset",
    )


def token_source(fixed: tuple[Credential, ...], path: str | None, variable: str) -> TokenSource:
    """What a server checks calls against, from its two settings."""
    return TokenSource(fixed, None if path is None else TokenFile(path, variable))


class UpstreamToken:
    """The one token a client sends: fixed, or a file's first entry, re-read as it changes."""

    def __init__(self, fixed: Secret | None, path: str | None, variable: str) -> None:
        self._fixed = fixed
        self._path = path
        self._variable = variable
        self._seen: tuple[int, int, int, int] | None = None
        self._token: str | None = None
        if path is not None and self._read() is None:
            raise ConfigError(f"{variable}={path!r}: expected a file holding one token")

    def token(self) -> str | None:
        if self._fixed is not None:
            return self._fixed.reveal()
        if self._path is None:
            return None
        return self._read()

    def _read(self) -> str | None:
        assert self._path is not None
        seen = _file_identity(self._path)
        if seen == self._seen and seen is not None:
            return self._token
        self._seen = seen
        token = None
        try:
            with open(self._path, encoding="utf-8") as file:
                for line in file:
                    text = line.strip()
                    if text and not text.startswith("#"):
                        token = text if _TOKEN.fullmatch(text) else None
                        break
        except (OSError, UnicodeDecodeError):
            token = None
        if token is None and self._token is not None:
            logger.error(f"{self._variable} ({self._path}): no token in the file; sending none")
        self._token = token
        return token


def metadata_of(token: Callable[[], str | None]) -> Callable[[], tuple[tuple[str, str], ...]]:
    """The authorization metadata for a client call, from a token getter."""

    def metadata() -> tuple[tuple[str, str], ...]:
        value = token()
        return () if value is None else (("authorization", f"Bearer {value}"),)

    return metadata


def as_upstream_token_file(env: Mapping[str, str], setting: Setting[str | None]) -> str | None:
    """A file holding the one token a client sends; it must hold one at start."""
    path = read_optional_str(env, setting.variable)
    if path is None:
        return setting.default
    UpstreamToken(None, path, setting.variable)
    return path
