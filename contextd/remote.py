"""A Chroma server as the vector store (team mode): checking the URL, the token, connecting.

    daemon A (data dir, catalog) ──┐                       ┌─ contextd-<namespace A>-<model>
    daemon B (data dir, catalog) ──┼─► TLS proxy + token ─►│  chroma run (loopback)
    daemon C (data dir, catalog) ──┘                       └─ contextd-<namespace C>-<model>

Chroma 1.x servers (`chroma run`) authenticate nobody: the open-source server is built
with a no-op auth provider, and Chroma's migration notes say it "no longer provides
built-in authentication implementations". So the token is checked by what stands in
front of the server (a TLS reverse proxy, see the README's team mode), and contextd sends
it the way Chroma's own client does: `Authorization: Bearer <token>` on every request,
through `chromadb.auth.token_authn.TokenAuthClientProvider`.

Before opening a Chroma client, one authenticated request (`/api/v2/auth/identity`) tells
an unreachable server, an untrusted certificate and a refused token apart, so each gets
its own sentence (the Chroma client turns them all into "Could not connect to tenant").
"""

from __future__ import annotations

import ipaddress
import logging
import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from contextd.errors import ConfigError, StoreUnavailable
from contextd.settings import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
# Between bytes of one answer: a stuck server fails a search in this time, under the CLI's
# 60 s; an upsert goes 1,000 records (a few MB) at a time.
READ_TIMEOUT_S = 30.0
TOKEN_PROVIDER = "chromadb.auth.token_authn.TokenAuthClientProvider"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost: DNS decides, so it is not trusted


def check_url(settings: Settings) -> str:
    """The store URL, refused when it is plain http to another machine without an opt-in."""
    url = settings.store
    if url is None:
        raise ConfigError("CONTEXTD_STORE is not set: the store is embedded in the data dir.")
    parts = urlsplit(url)
    if (
        parts.scheme == "http"
        and not is_loopback(parts.hostname or "")
        and not settings.store_allow_insecure
    ):
        raise ConfigError(
            f"CONTEXTD_STORE is {url}: plain http to another machine would send the store "
            "token and your code across the network in clear. Use https:// (a TLS proxy in "
            "front of `chroma run`; see the README's team mode), or, on a network you trust, "
            "set CONTEXTD_STORE_ALLOW_INSECURE=1."
        )
    return url


@dataclass(frozen=True)
class Token:
    value: str | None
    origin: str  # where it came from, for status lines: never the token itself


def token_origin(settings: Settings) -> str:
    """Where the token would come from, without reading it (status)."""
    if settings.store_token is not None and settings.store_token.get_secret_value().strip():
        return "CONTEXTD_STORE_TOKEN"
    if settings.store_token_file is not None:
        return str(settings.store_token_file)
    if settings.default_token_path.is_file():
        return str(settings.default_token_path)
    return "none"


def read_token(settings: Settings) -> Token:
    given = settings.store_token.get_secret_value().strip() if settings.store_token else ""
    if given:  # set but empty counts as unset, as for CONTEXTD_STORE
        value, origin = given, "CONTEXTD_STORE_TOKEN"
    else:
        path = settings.store_token_file
        if path is None:
            if not settings.default_token_path.is_file():
                return Token(None, "none")
            path = settings.default_token_path
        if path.is_dir():
            raise ConfigError(
                f"The store token file {path} is a folder. Give the file that holds the "
                "token in CONTEXTD_STORE_TOKEN_FILE."
            )
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigError(
                    f"The store token file {path} can be read by other users (mode "
                    f"{mode:04o}). Run `chmod 600 {path}`."
                )
            value = path.read_text(encoding="utf-8-sig").strip()  # an editor's BOM too
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"The store token file {path} cannot be read ({exc}). "
                "Fix CONTEXTD_STORE_TOKEN_FILE, or put the token there with mode 0600."
            ) from None
        origin = str(path)
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigError(
            f"The store token from {origin} is empty or not printable ASCII without spaces. "
            "Put the token the proxy expects there."
        )
    return Token(value, origin)


def describe(settings: Settings) -> dict[str, Any]:
    """Which store this contextd uses, for `contextd status` and `doctor`. Never raises."""
    if settings.store is None:
        return {"kind": "embedded", "path": str(settings.chroma_path)}
    return {
        "kind": "server",
        "url": settings.store,
        "namespace": settings.namespace,
        "token": token_origin(settings),
        "insecure_allowed": settings.store_allow_insecure,
    }


def probe(settings: Settings, token: Token, timeout: float = PROBE_TIMEOUT_S) -> None:
    """One authenticated request; a StoreUnavailable that says what to do when it fails."""
    import httpx

    url = check_url(settings)
    verify: Any = str(settings.store_ca_file) if settings.store_ca_file else True
    headers = {"Authorization": f"Bearer {token.value}"} if token.value else {}
    try:
        # Proxy variables count, as they do for Chroma's own client: both agree.
        with httpx.Client(verify=verify, timeout=timeout) as http:
            resp = http.get(f"{url}/api/v2/auth/identity", headers=headers)
    except httpx.TimeoutException:
        raise StoreUnavailable(
            f"The Chroma server at {url} did not answer within {timeout:.0f}s. Check it "
            f"with `curl {url}/api/v2/heartbeat`, then run the command again."
        ) from None
    except (httpx.TransportError, OSError) as exc:
        raise unreachable(url, exc) from None
    if resp.status_code in (401, 403):
        hint = (
            "No token is configured: set CONTEXTD_STORE_TOKEN, or put the token in "
            f"{settings.default_token_path} (mode 0600)."
            if token.value is None
            else f"Check the token from {token.origin} against the one the proxy expects."
        )
        raise StoreUnavailable(
            f"The Chroma server at {url} refused contextd (HTTP {resp.status_code}). {hint}"
        )
    if resp.status_code == 404:
        raise StoreUnavailable(
            f"{url} has no Chroma API (HTTP 404 for /api/v2). Is it a Chroma 1.x server, "
            "and is the path in CONTEXTD_STORE right?"
        )
    if resp.status_code >= 400:
        raise StoreUnavailable(
            f"The Chroma server at {url} answered HTTP {resp.status_code}: "
            f"{resp.text.strip()[:200]}. See its log; `contextd status` shows the store in use."
        )


def unreachable(url: str, exc: BaseException) -> StoreUnavailable:
    import httpx

    reason = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
        return StoreUnavailable(
            f"The TLS certificate of {url} is not trusted ({reason}). If the server uses a "
            "private CA, set CONTEXTD_STORE_CA_FILE to its certificate."
        )
    if "WRONG_VERSION_NUMBER" in reason or "wrong version number" in reason:
        return StoreUnavailable(
            f"{url} does not speak TLS ({reason}): `chroma run` serves plain http. Put a TLS "
            "proxy in front of it (see the README's team mode), or use http:// on loopback."
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return StoreUnavailable(
            f"Could not connect to the Chroma server at {url} within {CONNECT_TIMEOUT_S:.0f}s: "
            "is the host up, and the port open to this machine? Check it with "
            f"`curl {url}/api/v2/heartbeat`."
        )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StoreUnavailable(
            f"The Chroma server at {url} stopped answering (no reply within "
            f"{READ_TIMEOUT_S:.0f}s): it is up but stuck or overloaded. Check it with "
            f"`curl {url}/api/v2/heartbeat`, then run the command again."
        )
    parts = urlsplit(url)
    port = parts.port or 8000
    default = 443 if parts.scheme == "https" else 80
    unset = "" if parts.port else f" (no port given, so {default}; `chroma run` uses 8000)"
    return StoreUnavailable(
        f"Cannot reach the Chroma server at {url}{unset} ({reason}). Is it running? On the "
        f"server: `chroma run --path DIR --host 127.0.0.1 --port {port}`; check it with "
        f"`curl {url}/api/v2/heartbeat`, or fix CONTEXTD_STORE."
    )


def connect(settings: Settings) -> Any:
    """A chromadb HttpClient for the configured server, after the probe has passed."""
    import chromadb
    import httpx
    from chromadb.config import Settings as ChromaSettings

    url = check_url(settings)
    token = read_token(settings)
    probe(settings, token)
    options: dict[str, Any] = {"anonymized_telemetry": False}
    if token.value:
        options |= {
            "chroma_client_auth_provider": TOKEN_PROVIDER,
            "chroma_client_auth_credentials": token.value,
            "chroma_auth_token_transport_header": "Authorization",
        }
    if settings.store_ca_file:
        options["chroma_server_ssl_verify"] = str(settings.store_ca_file)
    parts = urlsplit(url)
    try:
        client = chromadb.HttpClient(
            host=url,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            settings=ChromaSettings(**options),
        )
    except (ValueError, httpx.TransportError) as exc:
        raise unreachable(url, exc) from None
    # The client waits forever by default: a server that stops answering would hang the
    # daemon's one writer. Its session is private; without it the default stays.
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    log.info("store: Chroma server %s, namespace %s", url, settings.namespace)
    return client
