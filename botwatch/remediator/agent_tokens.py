"""A credential per agent, bound to its host: `botwatch agent-token HOST` issues one (printed once; the
ledger keeps only its SHA-256, so both replicas know it), `--revoke` shuts the host out at once. The
remediator derives an agent's host from its token, never from what the agent says it is.

Alertmanager's webhook token is another credential: it opens `/alerts`, not the agents' side.
"""

from __future__ import annotations

import hashlib
import secrets

TOKENS_KEY = "agent-tokens"       # ledger kv: host -> {"sha256": …, "issued": unix seconds}
PREFIX = "bwa_"                    # an agent token says what it is (a leaked one is recognisable in a scan)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(ledger, host: str, now: float) -> str:
    """A new token for `host`, replacing the one it had (that one stops working at once)."""
    token = PREFIX + secrets.token_urlsafe(32)
    with ledger.transaction():
        tokens = ledger.get(TOKENS_KEY) or {}
        tokens[host] = {"sha256": digest(token), "issued": now}
        ledger.put(TOKENS_KEY, tokens)
    return token


def revoke(ledger, host: str) -> bool:
    """Shut `host` out: False when it had no token."""
    with ledger.transaction():
        tokens = ledger.get(TOKENS_KEY) or {}
        if tokens.pop(host, None) is None:
            return False
        ledger.put(TOKENS_KEY, tokens)
    return True


def host_of(ledger, token: str) -> str | None:
    """The host a presented token belongs to, or None (unknown, replaced or revoked)."""
    if not token.startswith(PREFIX):
        return None
    wanted = digest(token)
    for host, entry in (ledger.get(TOKENS_KEY) or {}).items():
        if secrets.compare_digest(entry.get("sha256", ""), wanted):
            return host
    return None
