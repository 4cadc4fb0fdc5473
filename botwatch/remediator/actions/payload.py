"""Alertmanager's webhook payload (version "4"), parsed strictly: anything else is a PayloadError."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

MAX_ALERTS = 1000
MAX_LABEL = 4096


class PayloadError(ValueError):
    """A request body that is not an Alertmanager version-4 webhook payload; the message says why."""


@dataclass(frozen=True)
class Alert:
    status: str          # firing | resolved
    labels: dict[str, str]
    fingerprint: str
    starts_at: str
    ends_at: str | None = None   # a resolved copy's end; None for a firing one (Go's zero time) or when absent
    # when the trouble began, as the exporter saw it (TradingBotDown's `down_since` annotation, a death event's
    # time): startsAt is when a rule evaluation first saw it, up to a scrape and an evaluation later
    began: float | None = None

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def bot(self) -> str | None:
        return self.labels.get("bot")


def parse(body: bytes) -> list[Alert]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise PayloadError(f"body is not JSON: {err}") from None
    except RecursionError:      # [[[[…]]]] deeper than the parser goes: no Alertmanager payload nests so
        raise PayloadError("body is not JSON an alert could be: nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    if data.get("version") != "4":
        version = data.get("version")
        shown = repr(version)[:20] if isinstance(version, (str, int, float, bool)) or version is None \
            else type(version).__name__
        raise PayloadError(f"version must be \"4\" (Alertmanager's webhook payload), not {shown}")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts must be a list")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"{len(alerts)} alerts in one payload; at most {MAX_ALERTS}")
    return [_alert(index, alert) for index, alert in enumerate(alerts)]


def _alert(index: int, raw) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise PayloadError(f"{where} must be an object")
    status = raw.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.status must be firing or resolved")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise PayloadError(f"{where}.labels must map strings to strings")
    if any(len(k) > MAX_LABEL or len(v) > MAX_LABEL for k, v in labels.items()):
        raise PayloadError(f"{where}.labels: a label longer than {MAX_LABEL} characters")
    starts_at = raw.get("startsAt")
    if not isinstance(starts_at, str) or not _timestamp(starts_at):
        raise PayloadError(f"{where}.startsAt must be an RFC 3339 time")
    fingerprint = raw.get("fingerprint")
    if fingerprint is None:  # a sender other than Alertmanager: derive one from the labels
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 128:
        raise PayloadError(f"{where}.fingerprint must be a short string")
    return Alert(status, dict(labels), fingerprint, starts_at, _ends_at(where, raw.get("endsAt"), status),
                 _began(raw.get("annotations")))


def _began(annotations) -> float | None:
    """The `down_since` annotation (Unix seconds, as Prometheus prints a float), when there is a sane one."""
    if not isinstance(annotations, dict) or not isinstance(annotations.get("down_since"), str):
        return None
    try:
        value = float(annotations["down_since"][:40])
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def rfc3339(ts: float) -> str:
    """A Unix time as Alertmanager writes startsAt (UTC, microseconds)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _ends_at(where: str, ends_at, status: str) -> str | None:
    """A resolved alert's endsAt, which tells its episode from a later one; a firing alert's is a guess."""
    if ends_at is None or status != "resolved":
        return None
    if not isinstance(ends_at, str) or not _timestamp(ends_at):
        raise PayloadError(f"{where}.endsAt must be an RFC 3339 time")
    return None if ends_at.startswith("0001-") else ends_at


def _timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)   # 3.11 reads Go's nanoseconds and "Z"
    except ValueError:
        return False
    return True
