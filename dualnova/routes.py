"""The two routes' names, declared once.

A route name is also the model alias the inference service accepts for it:
the gateway sends ChatRequest.model="micro" and the inference service
resolves the alias to DUALNOVA_MICRO_MODEL. Health names (route/micro,
model/pro), settings (GATEWAY_MICRO_MAX_TOKENS), the CLI's columns and the
DualChat `route` field all derive from these words, so they are contracts.
No imports: both services' config modules and the CLI read this.
"""

from __future__ import annotations

__all__ = ["MEDIA_ROUTES", "MICRO", "PRO", "ROUTES"]

MICRO = "micro"
PRO = "pro"
# In the order they are started, shown and summed.
ROUTES: tuple[str, ...] = (MICRO, PRO)
# The routes whose models take images and documents. Nova Micro is text only
# (Bedrock rejects its media with a ValidationException), so DualChat refuses
# media bound for micro before any upstream call and they reach Pro alone,
# through pro.messages.
MEDIA_ROUTES: frozenset[str] = frozenset({PRO})
