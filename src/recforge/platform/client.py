"""A small synchronous HTTP client for the platform's REST API (used by the CLI).

Every method returns the decoded JSON body; a non-2xx answer raises :class:`PlatformError`
carrying the HTTP status and the server's ``detail`` message, and a server that cannot be
reached raises :class:`PlatformError` with status 0 naming the URL.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import httpx

__all__ = ["DEFAULT_URL", "PlatformClient", "PlatformError"]

DEFAULT_URL = "http://127.0.0.1:8765"


class PlatformError(RuntimeError):
    """The server refused a request (``status`` > 0) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, detail: str, body: Any = None) -> None:
        self.status = status
        self.detail = detail
        self.body = body
        super().__init__(f"HTTP {status}: {detail}" if status else detail)


class PlatformClient:
    """Talks to one platform server with one bearer token.

    ``url`` and ``token`` default to ``RECFORGE_PLATFORM_URL`` and ``RECFORGE_TOKEN``.
    ``http`` replaces the client's own ``httpx.Client`` (e.g. a ``fastapi.testclient.TestClient``
    to talk to an in-process app); it is used as given and not closed by :meth:`close`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = (url or os.environ.get("RECFORGE_PLATFORM_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("RECFORGE_TOKEN")
        # Sent with each request rather than set on the client, so an injected client is
        # left as it was given.
        self._headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if http is None:
            self._http = httpx.Client(base_url=self.url, timeout=timeout)
            self._owned = True
        else:
            self._http = http
            self._owned = False

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.request(
                method, path, json=json, params=clean or None, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise PlatformError(0, f"cannot reach the platform at {self.url}: {exc}") from None
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise PlatformError(resp.status_code, str(detail or resp.reason_phrase), body)
        return body

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit a job spec (a mapping as in a job YAML file)."""
        return self._request("POST", "/jobs", json=spec)  # type: ignore[no-any-return]

    def submit_template(self, template: str, values: dict[str, Any]) -> dict[str, Any]:
        """Submit a job rendered from template ``template`` with ``values``."""
        return self._request(  # type: ignore[no-any-return]
            "POST", "/jobs", json={"template": template, "values": values}
        )

    def list_jobs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        state: list[str] | None = None,
        queue: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"items": [...], "next_cursor": str | None}``."""
        params: dict[str, Any] = {"limit": limit, "cursor": cursor, "queue": queue}
        if state:
            params["state"] = state
        return self._request("GET", "/jobs", params=params)  # type: ignore[no-any-return]

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def why(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}/why")  # type: ignore[no-any-return]

    def logs(
        self, job_id: int, *, replica: int | None = None, tail: int | None = None
    ) -> dict[str, Any]:
        return self._request(  # type: ignore[no-any-return]
            "GET", f"/jobs/{job_id}/logs", params={"replica": replica, "tail": tail}
        )

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{job_id}/cancel")  # type: ignore[no-any-return]

    def metrics(self, job_id: int, since: float | None = None) -> dict[str, Any]:
        """A job's resource samples per replica and its anomalies."""
        return self._request(  # type: ignore[no-any-return]
            "GET", f"/jobs/{job_id}/metrics", params={"since": since}
        )

    def service(self, job_id: int) -> dict[str, Any]:
        """A service job's address and replicas."""
        return self._request("GET", f"/jobs/{job_id}/service")  # type: ignore[no-any-return]

    def scale(self, job_id: int, replicas: int) -> dict[str, Any]:
        """Ask a running service job for ``replicas`` replicas."""
        return self._request(  # type: ignore[no-any-return]
            "POST", f"/jobs/{job_id}/scale", json={"replicas": replicas}
        )

    def events(self, job_id: int) -> list[dict[str, Any]]:
        return self._request("GET", f"/jobs/{job_id}/events")  # type: ignore[no-any-return]

    # -- configuration ------------------------------------------------------------------------
    def get_config(self, kind: str) -> list[dict[str, Any]]:
        """Every definition of ``kind``: ``clusters``, ``groups`` or ``queues``."""
        return self._request("GET", f"/{kind}")  # type: ignore[no-any-return]

    def put_config(self, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace every definition of ``kind`` (admin only)."""
        return self._request("PUT", f"/{kind}", json=items)  # type: ignore[no-any-return]

    def templates(self) -> list[dict[str, Any]]:
        return self._request("GET", "/templates")  # type: ignore[no-any-return]

    def put_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a template (admin only)."""
        return self._request("POST", "/templates", json=body)  # type: ignore[no-any-return]

    def delete_template(self, name: str) -> None:
        self._request("DELETE", f"/templates/{name}")

    # -- users and health ---------------------------------------------------------------------
    def create_token(
        self,
        user: str,
        *,
        group: str | None = None,
        admin: bool = False,
        label: str = "",
        ttl_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Issue a token for ``user`` (admins: created in ``group`` if new; users: themselves)."""
        body: dict[str, Any] = {"user": user, "group": group, "admin": admin, "label": label}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return self._request("POST", "/tokens", json=body)  # type: ignore[no-any-return]

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Tokens without their secrets: yours (admins: ``user``'s, or all)."""
        return self._request("GET", "/tokens", params={"user": user})  # type: ignore[no-any-return]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Revoke a token by its id (``tok-...``)."""
        return self._request("DELETE", f"/tokens/{token_id}")  # type: ignore[no-any-return]

    def audit(
        self, *, limit: int = 100, cursor: str | None = None, action: str | None = None
    ) -> dict[str, Any]:
        """One page of the audit log (admin): ``{"items": [...], "next_cursor": ...}``."""
        return self._request(  # type: ignore[no-any-return]
            "GET", "/audit", params={"limit": limit, "cursor": cursor, "action": action}
        )

    # -- DAG runs and artefacts -------------------------------------------------------------
    def submit_dag(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit a DAG spec; the new run (with its nodes)."""
        return self._request("POST", "/dags", json=spec)  # type: ignore[no-any-return]

    def list_dags(self, *, limit: int = 50, cursor: str | None = None,
                  state: list[str] | None = None,
                  schedule_id: int | None = None) -> dict[str, Any]:  # fmt: skip
        params = {"limit": limit, "cursor": cursor, "state": state, "schedule_id": schedule_id}
        return self._request("GET", "/dags", params=params)  # type: ignore[no-any-return]

    def get_dag(self, run_id: int) -> dict[str, Any]:
        return self._request("GET", f"/dags/{run_id}")  # type: ignore[no-any-return]

    def dag_events(self, run_id: int) -> list[dict[str, Any]]:
        return self._request("GET", f"/dags/{run_id}/events")  # type: ignore[no-any-return]

    def cancel_dag(self, run_id: int) -> dict[str, Any]:
        return self._request("POST", f"/dags/{run_id}/cancel")  # type: ignore[no-any-return]

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        """The run's declared artefacts with their files."""
        return self._request("GET", f"/dags/{run_id}/artifacts")  # type: ignore[no-any-return]

    def download_artifact(self, run_id: int, node: str, name: str, out: Path) -> Path:
        """Unpack one artefact into directory ``out`` (streamed; entries that would land
        outside ``out`` are refused by tarfile's ``data`` filter); returns ``out``."""
        path = f"/dags/{run_id}/artifacts/{node}/{name}"
        with tempfile.TemporaryFile() as tmp:
            try:
                with self._http.stream("GET", path, headers=self._headers) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        try:
                            detail = resp.json().get("detail")
                        except ValueError:
                            detail = resp.text
                        raise PlatformError(resp.status_code, str(detail), None)
                    for chunk in resp.iter_bytes():
                        tmp.write(chunk)
            except httpx.TransportError as exc:
                raise PlatformError(0, f"cannot reach the platform at {self.url}: {exc}") from None
            tmp.seek(0)
            out.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=tmp, mode="r:gz") as tar:
                tar.extractall(out, filter="data")
        return out

    # -- schedules --------------------------------------------------------------------------
    def create_schedule(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/schedules", json=spec)  # type: ignore[no-any-return]

    def list_schedules(self) -> list[dict[str, Any]]:
        return self._request("GET", "/schedules")  # type: ignore[no-any-return]

    def get_schedule(self, schedule_id: int) -> dict[str, Any]:
        return self._request("GET", f"/schedules/{schedule_id}")  # type: ignore[no-any-return]

    def suspend_schedule(self, schedule_id: int, suspended: bool = True) -> dict[str, Any]:
        what = "suspend" if suspended else "resume"
        return self._request(  # type: ignore[no-any-return]
            "POST", f"/schedules/{schedule_id}/{what}")

    def backfill(self, schedule_id: int, start: str, end: str) -> dict[str, Any]:
        """Queue every instant of ``[start, end]`` (ISO 8601; no zone: the schedule's)."""
        return self._request(  # type: ignore[no-any-return]
            "POST", f"/schedules/{schedule_id}/backfill", json={"start": start, "end": end})

    def schedule_instants(self, schedule_id: int, limit: int = 100) -> list[dict[str, Any]]:
        return self._request(  # type: ignore[no-any-return]
            "GET", f"/schedules/{schedule_id}/instants", params={"limit": limit})

    def schedule_events(self, schedule_id: int) -> list[dict[str, Any]]:
        return self._request(  # type: ignore[no-any-return]
            "GET", f"/schedules/{schedule_id}/events")

    def delete_schedule(self, schedule_id: int) -> None:
        self._request("DELETE", f"/schedules/{schedule_id}")

    def whoami(self) -> dict[str, Any]:
        return self._request("GET", "/whoami")  # type: ignore[no-any-return]

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")  # type: ignore[no-any-return]
