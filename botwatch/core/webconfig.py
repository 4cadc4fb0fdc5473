"""`--web-config FILE`: TLS and basic auth for a listener, in the shape Prometheus, Alertmanager and
node_exporter read (the exporter-toolkit's web.yml), plus one key of botwatch's own (`open_paths`).

    tls_server_config:
      cert_file: /etc/botwatch/tls/agent.crt
      key_file: /etc/botwatch/tls/agent.key
      client_auth_type: RequireAndVerifyClientCert     # optional; then client_ca_file too
      client_ca_file: /etc/botwatch/tls/clients-ca.crt
      min_version: TLS12                               # TLS12 (default) or TLS13
    basic_auth_users:                                  # bcrypt hashes: `botwatch hash-password`
      prometheus: $2b$12$...
    open_paths: [/metrics]                             # answered without basic auth (botwatch's key)

What exporter-toolkit offers and Python's ssl can't do as it means (cipher_suites in Go's names,
curve_preferences, RequestClientCert/RequireAnyClientCert without verifying the chain) is refused by name
rather than quietly ignored: a listener is never less protected than its file says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from botwatch.core.serve import StartupError

# exporter-toolkit's client_auth_type values Python's ssl serves with the same meaning
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
UNSUPPORTED = {"cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "prefer_server_cipher_suites",
               "curve_preferences"}
ALWAYS_OPEN = ("/-/healthy",)          # a health probe (the image's HEALTHCHECK) carries no credential


@dataclass(frozen=True)
class WebConfig:
    path: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    client_auth: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    users: dict[str, bytes] = field(default_factory=dict)       # name -> bcrypt hash
    open_paths: tuple[str, ...] = ()

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version, context.maximum_version = VERSIONS[self.min_version], VERSIONS[self.max_version]
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        context.verify_mode = CLIENT_AUTH[self.client_auth]
        if self.client_ca_file:
            context.load_verify_locations(cafile=str(self.client_ca_file))
        return context


def load(path: str | Path | None) -> WebConfig:
    """The web config in `path` (None: plain HTTP, no basic auth), or StartupError naming what to fix."""
    if path is None:
        return WebConfig()
    path = Path(path)
    where = f"--web-config {path}"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise StartupError(f"{where}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise StartupError(f"{where}: not YAML: {err}") from None
    if not isinstance(doc, dict):
        raise StartupError(f"{where}: expected a mapping with tls_server_config, basic_auth_users, open_paths")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users", "open_paths", "http_server_config"}
    if unknown:
        raise StartupError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected tls_server_config, "
                           "basic_auth_users, open_paths")
    if doc.get("http_server_config"):
        raise StartupError(f"{where}: http_server_config is not supported by botwatch (no HTTP/2; headers are "
                           "its own): remove it")
    return WebConfig(path=path, **_tls(doc.get("tls_server_config"), path, where),
                     users=_users(doc.get("basic_auth_users"), where),
                     open_paths=_paths(doc.get("open_paths"), where))


def _tls(section, base: Path, where: str) -> dict:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise StartupError(f"{where}: tls_server_config must be a mapping with cert_file and key_file")
    for key in section:
        if key in UNSUPPORTED:
            raise StartupError(f"{where}: tls_server_config.{key} is not supported by botwatch: remove it "
                               "(files only: cert_file, key_file, client_ca_file)")
        if key not in TLS_KEYS:
            raise StartupError(f"{where}: tls_server_config.{key}: unknown key; expected one of "
                               f"{', '.join(sorted(TLS_KEYS))}")
    out: dict = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        if section.get(key):
            file = Path(str(section[key]))
            file = file if file.is_absolute() else base.parent / file
            if not file.is_file():
                raise StartupError(f"{where}: tls_server_config.{key}: no file {file}")
            out[key] = file
    if ("cert_file" in out) != ("key_file" in out):
        raise StartupError(f"{where}: tls_server_config needs both cert_file and key_file")
    auth = section.get("client_auth_type") or ("RequireAndVerifyClientCert" if "client_ca_file" in out
                                               else "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise StartupError(f"{where}: tls_server_config.client_auth_type {auth!r}: botwatch serves "
                           f"{', '.join(CLIENT_AUTH)} (the others accept a certificate without checking it)")
    if auth != "NoClientCert" and "client_ca_file" not in out:
        raise StartupError(f"{where}: tls_server_config.client_auth_type {auth} needs client_ca_file")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        versions[key] = section.get(key) or default
        if versions[key] not in VERSIONS:
            raise StartupError(f"{where}: tls_server_config.{key} {versions[key]!r}: TLS12 or TLS13")
    if VERSIONS[versions["min_version"]] > VERSIONS[versions["max_version"]]:
        raise StartupError(f"{where}: tls_server_config.min_version is above max_version")
    if "cert_file" in out:
        try:      # the pair loads now, so a wrong key is said at start, not at the first connection
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(out["cert_file"]), str(out["key_file"]))
        except (ssl.SSLError, OSError) as err:
            raise StartupError(f"{where}: tls_server_config: cert_file and key_file don't load as a pair: "
                               f"{err}") from None
    elif "client_ca_file" in out:
        raise StartupError(f"{where}: tls_server_config.client_ca_file without cert_file and key_file")
    return {**out, "client_auth": auth, **versions}


def _users(section, where: str) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise StartupError(f"{where}: basic_auth_users must map user names to bcrypt hashes")
    users = {}
    for name, hashed in section.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            raise StartupError(f"{where}: basic_auth_users.{name}: not a bcrypt hash (make one with "
                               "`botwatch hash-password`)")
        users[str(name)] = hashed.encode()
    return users


def _paths(section, where: str) -> tuple[str, ...]:
    if section is None:
        return ()
    if not isinstance(section, list) or not all(isinstance(p, str) and p.startswith("/") for p in section):
        raise StartupError(f"{where}: open_paths must be a list of paths like /metrics")
    return tuple(section)


class BasicAuth:
    """WSGI middleware: HTTP basic auth against bcrypt hashes for the paths `guarded` says, except the
    config's open_paths and /-/healthy. A password that matched is remembered (as its SHA-256, keyed by user
    and hash), so a scrape every few seconds does not pay bcrypt's cost each time (exporter-toolkit caches
    the same way); an unknown user is checked against a dummy hash, taking the same time as a wrong password."""

    CACHE = 256

    def __init__(self, app, web: WebConfig, guarded: Callable[[str], bool] = lambda path: True):
        import bcrypt
        self.app, self.users, self.guarded = app, web.users, guarded
        self.open = set(web.open_paths) | set(ALWAYS_OPEN)
        self._dummy = bcrypt.hashpw(b"never a password", bcrypt.gensalt(4))
        self._passed: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path in self.open or not self.guarded(path) or self._allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate", 'Basic realm="botwatch", charset="UTF-8"')])
        return [b"401 Unauthorized: basic auth (a user of this listener's --web-config basic_auth_users)\n"]

    def _allowed(self, header: str) -> bool:
        import bcrypt
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password.encode()))).digest()
        with self._lock:
            if hashed is not None and key in self._passed:
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        except ValueError:          # bcrypt 5 refuses a password over 72 bytes: no user has one
            return False
        if ok:
            with self._lock:
                self._passed[key] = None
                while len(self._passed) > self.CACHE:
                    del self._passed[next(iter(self._passed))]
        return ok


def guard(app, web: WebConfig, guarded: Callable[[str], bool] = lambda path: True):
    """`app` behind basic auth when the web config names users; else `app` itself."""
    return BasicAuth(app, web, guarded) if web.users else app


def say_openness(web: WebConfig, host: str, name: str, paths: list[str]) -> None:
    """Log what this listener answers without a credential; a warning when that is more than loopback's."""
    import ipaddress
    import logging
    log = logging.getLogger(__name__)
    open_ones = [p for p in paths if not web.users or p in web.open_paths]
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if open_ones and not local:
        log.warning("%s on %s: %s answer%s anyone who reaches it%s; give basic_auth_users in --web-config to "
                    "close %s", name, host, ", ".join(open_ones), "s" if len(open_ones) == 1 else "",
                    "" if web.tls else ", over plain HTTP", "them" if len(open_ones) > 1 else "it")
    log.info("%s: %s; basic auth %s", name, "TLS" if web.tls else "plain HTTP",
             f"for {len(web.users)} user(s)" if web.users else "off")
