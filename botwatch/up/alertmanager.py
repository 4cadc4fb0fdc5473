"""Rendering alertmanager/alertmanager.yml into the file Alertmanager runs from, secrets put in at start.

Alertmanager 0.25's telegram_configs has no bot_token_file, so the token can't stay in a file of its
own: it is read from `telegram.bot_token_file` and written into a rendered copy (mode 0600) that lives
outside git, next to the state it belongs to.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from botwatch import resources
from botwatch.core.config import Config
from botwatch.core.files import write_atomic


class RenderError(Exception):
    pass


def shipped_template() -> Path:
    """The committed alertmanager.yml shipped with botwatch (its templates/ folder beside it)."""
    return resources.path("alertmanager", "alertmanager.yml")


def render(config: Config, remediator_url: str, webhook_token_file: Path, template: Path | None = None,
           ca_file: Path | str | None = None) -> str:
    """The Alertmanager config with the webhook address, token file, Telegram token and chats filled in;
    with `ca_file`, the webhook's TLS verified against it (a remediator serving https with a private CA).

    Without a Telegram token or chat the Telegram receivers are left empty (Alertmanager drops what
    they get) and the caller should say so.
    """
    template = Path(template) if template else shipped_template()
    doc = _read_template(template)
    token = _token(config)
    chats = config.telegram.chat_ids
    api_url = config.telegram.api_url
    templates_dir = template.parent / "templates"
    doc["templates"] = [str(templates_dir / "*.tmpl")]
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = remediator_url.rstrip("/") + "/alerts"
            hook["http_config"]["authorization"]["credentials_file"] = str(Path(webhook_token_file).resolve())
            if ca_file:
                hook["http_config"]["tls_config"] = {"ca_file": str(ca_file)}
        if "telegram_configs" in receiver:
            base = receiver.pop("telegram_configs")[0]
            if token and chats:
                receiver["telegram_configs"] = [
                    dict(base, bot_token=token, chat_id=_chat_id(chat), api_url=api_url) for chat in chats]
    return yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def _token(config: Config) -> str | None:
    path = config.telegram.bot_token_file
    if not path:
        return None
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise RenderError(f"telegram.bot_token_file: cannot read {path}: {err.strerror}") from None
    if not token or any(ch.isspace() for ch in token):
        raise RenderError(f"telegram.bot_token_file: {path} must hold the bot token alone, on one line")
    return token


def _chat_id(chat) -> int:
    try:
        return int(chat)
    except ValueError:
        raise RenderError(f"telegram.chat_id: Alertmanager needs numeric chat ids, not {chat!r}") from None


def _read_template(path: Path) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise RenderError(f"--template {path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise RenderError(f"--template {path}: not YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("receivers"), list):
        raise RenderError(f"--template {path}: not an Alertmanager config (no receivers list)")
    return doc


def write(path: Path, text: str) -> None:
    """Write the rendered file readable by its owner only: it holds the bot token."""
    write_atomic(path, text, private=True)
