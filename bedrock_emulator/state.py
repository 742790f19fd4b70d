"""Everything the emulator remembers between requests, in one place so reset() is complete."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from bedrock_emulator.faults import FaultBook
from bedrock_emulator.requests_log import RequestLog


@dataclass
class PromptCache:
    """Prompt-cache entries written so far (keys from answers.cache_key)."""

    _keys: set[str] = field(default_factory=set)

    def hit_or_write(self, key: str) -> bool:
        """True if `key` was cached already; otherwise cache it now and return False."""
        if key in self._keys:
            return True
        self._keys.add(key)
        return False

    def clear(self) -> None:
        self._keys.clear()


@dataclass
class EmulatorState:
    pace: float = 1.0  # multiplies every model's pacing; 0 streams without delay
    log: RequestLog = field(default_factory=RequestLog)
    faults: FaultBook = field(default_factory=FaultBook)
    prompt_cache: PromptCache = field(default_factory=PromptCache)

    def reset(self) -> None:
        """Forget the log, the fault rules and the prompt cache (pacing stays)."""
        self.log.clear()
        self.faults.clear()
        self.prompt_cache.clear()


STATE = web.AppKey("emulator_state", EmulatorState)
