"""Run the dashboard: check the bind, bind the socket ourselves, hand it to uvicorn.

Binding first lets `--port 0` pick a free port and the printed URL (and the
Host check) name the port actually used.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from skyterra.dashboard import security

DEFAULT_PORT = 8765


def bind(host: str, port: int) -> socket.socket:
    from skyterra.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot serve the dashboard on {host}:{port} ({error.strerror}); "
                          "choose another --port (0 picks a free one) or --host.") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def prepare(host: str, port: int, *, new_token: bool = False, require_token: bool = False,
            say: Callable[[str], None] = print):
    """Check the bind, make the token if asked, bind the socket:
    (uvicorn server, bound socket, URL, the Guard's policy). Nothing listens yet."""
    token = security.new_token() if new_token else security.load_token()
    # Refuse before binding: an unsafe bind must never accept a connection.
    security.check_bind(host, token, require_token)
    if new_token:
        say(f"New dashboard token (shown only now; kept in {security.token_path()}, mode 0600):"
            f"\n  {token}")
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    policy = security.policy_for(host, actual, token, require_token)
    return _server(policy), sock, url(host, actual), policy


def _server(policy: security.Policy):
    import uvicorn

    from skyterra.dashboard.app import create_app

    class Server(uvicorn.Server):
        """uvicorn's server that also ends the open log streams when asked to exit
        (uvicorn would otherwise wait for them, then cancel them noisily)."""

        def __init__(self, config: uvicorn.Config, stopping: threading.Event):
            super().__init__(config)
            self.stopping = stopping

        def handle_exit(self, sig, frame) -> None:
            self.stopping.set()
            super().handle_exit(sig, frame)

        def stop(self) -> None:
            """Exit, from another thread (tests, embedding)."""
            self.stopping.set()
            self.should_exit = True

    stopping = threading.Event()
    config = uvicorn.Config(create_app(policy, stopping), log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=5,
                            server_header=False)
    return Server(config, stopping)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, new_token: bool = False,
          require_token: bool = False, say: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C."""
    server, sock, address, policy = prepare(host, port, new_token=new_token,
                                            require_token=require_token, say=say)
    how = " (needs the token: open it with ?token=TOKEN once)" if policy.token else ""
    say(f"skyterra dashboard on {address}{how}  (Ctrl-C stops it)")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: the normal way out
        pass
    finally:
        sock.close()
    say("dashboard stopped.")
