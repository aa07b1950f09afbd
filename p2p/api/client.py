"""A small synchronous client of the admin API, for the `p2p` command and for scripts.

It finds the daemon through the home directory (`api.json` for the address, `api-token`
for the bearer token; p2p.api.token defines both) and turns every failure into one of
three errors the command line can explain in a line: the daemon is not running, the
token was refused, or the API answered with an error code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from p2p.core.errors import LocalError, P2PError

from . import token as homefiles

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
PEER_MARGIN_S = 10.0  # on top of a peer timeout, for the agent's own work
PAGE = 1000


class DaemonNotRunning(LocalError):
    code = "daemon-not-running"


class Unauthorized(LocalError):
    code = "unauthorized"


class ApiError(P2PError):
    """The API answered with `{"error": code, "detail": text}`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code = status, code


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Client:
    def __init__(self, host: str, port: int, token: str | None, *, token_path: Path | None = None) -> None:
        self.host, self.port, self.token_path = host, port, token_path
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=base_url(host, port), headers=headers,
                                  timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))

    @classmethod
    def from_home(cls, home: Path | str | None = None) -> Client:
        """A client for the daemon of `home` (default: $P2P_HOME or ~/.p2p). Without an
        `api.json` the daemon is looked for at the default address, so the error a user
        sees is the one about the daemon, not about a missing file."""
        home = Path(home) if home is not None else homefiles.default_home()
        host, port = homefiles.read_address(home) or (homefiles.DEFAULT_HOST, homefiles.DEFAULT_PORT)
        return cls(host, port, homefiles.load_token(home), token_path=home / homefiles.TOKEN_FILE)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------

    def _not_running(self) -> DaemonNotRunning:
        return DaemonNotRunning(f"the daemon is not running (no API at {self.host}:{self.port}); "
                                "start it with `p2p daemon`")

    def _raise_for(self, response: httpx.Response) -> None:
        try:
            doc = response.json()
            code, detail = doc["error"], doc.get("detail", "")
        except (ValueError, KeyError, TypeError):
            code, detail = "http-error", f"unexpected answer from the API (HTTP {response.status_code})"
        if response.status_code == 401:
            where = f" in {self.token_path}" if self.token_path else ""
            raise Unauthorized(f"the daemon refused the API token{where}" if "authorization" in self._http.headers
                               else f"no API token{where}; is this the daemon's home?")
        raise ApiError(response.status_code, str(code), str(detail))

    def request(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
                timeout: float | None = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, "/v1" + path, json=body, params=params,
                                          timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else
                                          httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S))
        except httpx.ConnectError:
            raise self._not_running() from None
        except httpx.TimeoutException:
            raise ApiError(0, "timeout", "the daemon did not answer in time") from None
        except httpx.TransportError as exc:
            raise ApiError(0, "transport-error", f"talking to the daemon failed: {exc}") from None
        if response.status_code >= 400:
            self._raise_for(response)
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "http-error", "the API answered with something that is not JSON") from None

    # --- resources -----------------------------------------------------------------------

    def health(self) -> dict:
        return self.request("GET", "/health")

    def status(self) -> dict:
        return self.request("GET", "/status")

    def openapi(self) -> dict:
        return self.request("GET", "/openapi.json")

    def create_invitation(self, *, multi_use: bool = False, label: str | None = None,
                          expires_in: int | None = None) -> dict:
        return self.request("POST", "/invitations", body={"multi_use": multi_use, "label": label,
                                                          "expires_in": expires_in})

    def invitations(self) -> list[dict]:
        return self.request("GET", "/invitations")["invitations"]

    def accept(self, url: str, *, label: str | None = None, timeout: float = 30) -> dict:
        return self.request("POST", "/invitations/accept", body={"url": url, "label": label, "timeout": timeout},
                            timeout=timeout + PEER_MARGIN_S)

    def relationships(self, *, state: str | None = None) -> list[dict]:
        return self.request("GET", "/relationships", params={"state": state})["relationships"]

    def relationship(self, relationship_id: str) -> dict:
        return self.request("GET", f"/relationships/{_seg(relationship_id)}")

    def revoke(self, relationship_id: str, *, reason: str | None = None) -> dict:
        return self.request("POST", f"/relationships/{_seg(relationship_id)}/revoke", body={"reason": reason})

    def ping(self, relationship_id: str, *, timeout: float = 10) -> dict:
        return self.request("POST", f"/relationships/{_seg(relationship_id)}/ping", body={"timeout": timeout},
                            timeout=timeout + PEER_MARGIN_S)

    def discover(self, relationship_id: str, *, match: str = "*", timeout: float = 10) -> list[dict]:
        return self.request("POST", f"/relationships/{_seg(relationship_id)}/discover",
                            body={"match": match, "timeout": timeout}, timeout=timeout + PEER_MARGIN_S)["features"]

    def discover_nearby(self, *, timeout: float = 3) -> dict:
        """LAN discovery (spec/15): {"nearby": [...], "rejected": [...]}; takes `timeout` s."""
        return self.request("GET", "/discover", params={"timeout": timeout}, timeout=timeout + PEER_MARGIN_S)

    def send(self, relationship_id: str, *, type: str, body: dict, thid: str | None = None,
             pthid: str | None = None, expires_in: int | None = None, please_ack: bool = False) -> dict:
        return self.request("POST", "/messages", body={
            "relationship": relationship_id, "type": type, "body": body, "thid": thid, "pthid": pthid,
            "expires_in": expires_in, "please_ack": please_ack})

    def send_many(self, relationship_id: str, messages: list[dict]) -> list[dict]:
        return self.request("POST", "/messages", body={"relationship": relationship_id,
                                                       "messages": messages})["messages"]

    def messages(self, *, relationship: str | None = None, thid: str | None = None, direction: str | None = None,
                 type: str | None = None, after: int | None = None, limit: int = 100,
                 protocol: bool = False) -> dict:
        """One page: {"messages": [...], "next_after": cursor | None}. Application
        messages only unless `protocol` (spec/14 §14.5)."""
        return self.request("GET", "/messages", params={
            "relationship": relationship, "thid": thid, "direction": direction, "type": type, "after": after,
            "limit": limit, "protocol": "true" if protocol else None})

    def iter_messages(self, *, after: int | None = None, page: int = PAGE, **filters: Any) -> Iterator[dict]:
        """Every matching message, oldest first, fetched a page at a time."""
        while True:
            got = self.messages(after=after, limit=page, **filters)
            yield from got["messages"]
            after = got["next_after"]
            if after is None:
                return

    def message(self, message_id: str, *, relationship: str | None = None) -> dict:
        return self.request("GET", f"/messages/{_seg(message_id)}", params={"relationship": relationship})

    def thread(self, thid: str, *, protocol: bool = False) -> list[dict]:
        return self.request("GET", f"/threads/{_seg(thid)}",
                            params={"protocol": "true" if protocol else None})["messages"]

    def events(self) -> Iterator[dict]:
        """The live event stream; blocks between events, ends when the daemon ends it."""
        try:
            with self._http.stream("GET", "/v1/events", timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise_for(r)
                data: list[str] = []
                for line in r.iter_lines():
                    if not line:
                        if data:
                            yield json.loads("\n".join(data))
                            data = []
                    elif line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
        except httpx.ConnectError:
            raise self._not_running() from None
        except httpx.TransportError as exc:
            raise ApiError(0, "transport-error", f"the event stream broke: {exc}") from None


def _seg(value: str) -> str:
    """One path segment: ids are the caller's text, so '/' or '?' must not reshape the URL."""
    return quote(value, safe="")
