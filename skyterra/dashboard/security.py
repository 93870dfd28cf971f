"""Who may use the dashboard: the access token, Host/Origin/CSRF checks, headers.

- Bound to a loopback address (the default), the page needs no token, but the
  Host header must name that address: a web page elsewhere that points its
  own DNS name at 127.0.0.1 (DNS rebinding) is refused.
- Bound anywhere else, every request (but the page's static files) needs the token (`Authorization: Bearer
  TOKEN`, or once `/?token=TOKEN`, which sets an HttpOnly cookie). The token
  is made by `skyterra dashboard --new-token`, printed once and kept 0600 in
  SKYTERRA_HOME; without it such a bind is refused.
- Actions are POST and need the per-server CSRF token (embedded in the page,
  sent back in a header: another site cannot read it nor send the header
  without a CORS preflight we never grant), and a same-origin Origin header
  when the browser sends one.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from skyterra import paths
from skyterra.errors import ConfigError

TOKEN_FILE = "dashboard.token"
COOKIE = "skyterra_dashboard"
CSRF_HEADER = "x-skyterra-csrf"
SAFE_METHODS = ("GET", "HEAD")
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class UnsafeBindError(ConfigError):
    """A bind the dashboard refuses: reachable from other machines with no token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_path() -> Path:
    return paths.home() / TOKEN_FILE


def new_token() -> str:
    """A fresh access token, stored 0600 in SKYTERRA_HOME (replacing an old one)."""
    from skyterra import state

    state.ensure_home()
    token = secrets.token_urlsafe(32)
    path = token_path()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return token


def load_token() -> str | None:
    try:
        path = token_path()
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} can be read by other users; `chmod 600 {path}` or make "
                              "a new one with `skyterra dashboard --new-token`.")
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


@dataclasses.dataclass
class Policy:
    """What the Guard enforces for one server."""

    token: str | None                     # None: no token needed (loopback bind)
    allowed_hosts: frozenset[str] | None  # Host headers accepted; None: any (token required)
    csrf: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))


def check_bind(host: str, token: str | None, require_token: bool = False) -> None:
    """Raise UnsafeBindError when serving on `host` needs a token (a non-loopback
    address, or require_token) and there is none."""
    if (require_token or not is_loopback(host)) and not token:
        raise UnsafeBindError(
            f"refusing to serve the dashboard on {host} without an access token: anyone who "
            "can reach that address could cancel jobs and destroy clusters. Run `skyterra "
            "dashboard --new-token` once (it prints the token one time and keeps it, mode "
            f"0600, in {token_path()}), or bind to 127.0.0.1 (the default) and use an SSH "
            "tunnel.")


def policy_for(host: str, port: int, token: str | None, require_token: bool = False) -> Policy:
    """The rules for a server bound to host:port (check_bind first)."""
    check_bind(host, token, require_token)
    if not is_loopback(host):
        return Policy(token=token, allowed_hosts=None)
    names = {"127.0.0.1", "localhost", "[::1]", host if ":" not in host else f"[{host}]"}
    return Policy(token=token, allowed_hosts=frozenset(f"{n}:{port}" for n in names))


class Guard:
    """ASGI middleware: every request passes the Host, token and CSRF checks first."""

    def __init__(self, app: Any, policy: Policy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # no route speaks it; never let one past the checks
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _respond(send, *refusal, html=scope["path"] == "/" and refusal[0] == 401)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple | None:
        """(status, message, extra headers) to answer instead of the app, or None."""
        host = headers.get("host", "").lower()
        if self.policy.allowed_hosts is not None and host not in self.policy.allowed_hosts:
            return 403, (f"unknown Host {host!r}: open the dashboard at the address it "
                         "printed."), []
        public = scope["path"].startswith("/static/") and scope["method"] in SAFE_METHODS
        if self.policy.token and not public:
            refusal = self._token_refusal(scope, headers)
            if refusal is not None:
                return refusal
        if scope["method"] not in SAFE_METHODS:
            return self._csrf_refusal(headers, host)
        return None

    def _token_refusal(self, scope: dict, headers: dict[str, str]) -> tuple | None:
        """No valid token: 401. `GET /?token=T` logs a browser in: a cookie, then `/`
        (so that the token leaves the address bar and the history)."""
        token = self.policy.token or ""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered = query.get("token", [""])[0]
        if offered and scope["path"] == "/" and scope["method"] == "GET":
            if not _same(offered, token):
                return 401, "wrong token.", []
            cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            return 303, "", [(b"location", b"/"), (b"set-cookie", cookie.encode())]
        if not _same(_supplied_token(headers), token):
            return 401, ("this dashboard needs its access token: open /?token=TOKEN once, "
                         "or send `Authorization: Bearer TOKEN`."), []
        return None

    def _csrf_refusal(self, headers: dict[str, str], host: str) -> tuple | None:
        """An action must come from our own page: same origin, and the page's CSRF token."""
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host}":
            return 403, f"cross-origin request from {origin!r} refused.", []
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused.", []
        if not _same(headers.get(CSRF_HEADER, ""), self.policy.csrf):
            return 403, (f"missing or wrong CSRF token: send the page's token in the "
                         f"{CSRF_HEADER} header (GET /api/session gives it)."), []
        return None


def _same(offered: str, expected: str) -> bool:
    return bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())


def _supplied_token(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no token
        return ""
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel else ""


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>skyterra dashboard</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main class="login"><h1>skyterra dashboard</h1>
<p>This dashboard needs its access token (printed by <code>skyterra dashboard --new-token</code>,
kept in SKYTERRA_HOME/dashboard.token).</p>
<form method="get" action="/"><input type="password" name="token" placeholder="token"
 autocomplete="off" required> <button type="submit">Open</button></form></main></body></html>"""


async def _respond(send: Any, status: int, message: str, extra: list, html: bool = False
                   ) -> None:
    """A refusal: JSON {"error": ...} for scripts; the token form for a browser at /."""
    if html:
        body, kind = LOGIN_PAGE.encode(), b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message}).encode() if message else b""
        kind = b"application/json"
    head = [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
            *extra, *HEADERS]
    if status == 401:
        head.append((b"www-authenticate", b'Bearer realm="skyterra dashboard"'))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
