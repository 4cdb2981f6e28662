"""A Kubernetes-API-compatible test server (no real API server can run on these machines).

It speaks enough of the API's JSON and semantics for the official ``kubernetes`` Python client to
work unchanged: namespaces (create, get), pods (create, get, list with label selectors, in one
namespace or all, watch with ``resourceVersion``/``timeoutSeconds``, delete, ``status``
subresource patch/replace, ``log``), secrets (create with ``stringData`` stored as base64
``data``, get, list, delete) and Volcano PodGroups (``scheduling.volcano.sh/v1beta1``:
create, get, list, delete). Objects get ``uid``, ``resourceVersion`` (one counter, as etcd's
revision), ``creationTimestamp``; new pods start ``Pending``. Errors are ``Status`` objects
(404 NotFound, 409 AlreadyExists, 422 Invalid). Tests play the kubelet and the scheduler: they
set pod phases through the status subresource and logs through :meth:`K8sTestServer.set_log`.

Not modelled: authentication, admission, real scheduling, graceful deletion (pods go at once),
field selectors, server-side apply, pagination (``limit``/``continue``). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_NS = r"(?P<ns>[a-z0-9-]+)"
_NAME = r"(?P<name>[a-z0-9.-]+)"
_VOLCANO = "/apis/scheduling.volcano.sh/v1beta1"
_ROUTES = [
    ("namespaces", re.compile(r"^/api/v1/namespaces(?:/" + _NAME + ")?$")),
    ("pod_log", re.compile(rf"^/api/v1/namespaces/{_NS}/pods/{_NAME}/log$")),
    ("pod_status", re.compile(rf"^/api/v1/namespaces/{_NS}/pods/{_NAME}/status$")),
    ("pods", re.compile(rf"^/api/v1/namespaces/{_NS}/pods(?:/{_NAME})?$")),
    ("all_pods", re.compile(r"^/api/v1/pods$")),
    ("secrets", re.compile(rf"^/api/v1/namespaces/{_NS}/secrets(?:/{_NAME})?$")),
    ("podgroups", re.compile(rf"^{_VOLCANO}/namespaces/{_NS}/podgroups(?:/{_NAME})?$")),
]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
    ``a`` (exists), ``!a`` (does not exist), comma-separated (all must hold)."""
    if not selector:
        return True
    for term in re.split(r",(?![^()]*\))", selector):
        term = term.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in") or (op == "in" and key not in labels):
                return False
        elif "!=" in term:
            key, value = (x.strip() for x in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (x.strip() for x in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class _State:
    revision: int = 0
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    podgroups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # pods only
    cond: threading.Condition = field(default_factory=threading.Condition)
    requests: list[tuple[str, str]] = field(default_factory=list)


class K8sTestServer:
    """The server on ``127.0.0.1:<port>``; ``url`` for the client's ``host``."""

    def __init__(self) -> None:
        self.state = _State()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def _send(self, code: int, obj: Any, content_type: str = "application/json") -> None:
                raw = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                server.state.requests.append((method, url.path))
                try:
                    for kind, rx in _ROUTES:
                        m = rx.match(url.path)
                        if m is not None:
                            body = self._body() if method in ("POST", "PUT", "PATCH") else None
                            if method == "GET" and query.get("watch") in ("true", "1"):
                                self._watch(m.groupdict(), query)
                                return
                            code, out = server.dispatch(kind, method, m.groupdict(), query, body)
                            if kind == "pod_log":
                                self._send(code, out, "text/plain")
                            else:
                                self._send(code, out)
                            return
                    raise ApiError(404, "NotFound", f"the server could not find {url.path}")
                except ApiError as exc:
                    self._send(exc.code, exc.status())

            def _watch(self, params: dict[str, str], query: dict[str, str]) -> None:
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 30)
                selector, ns = query.get("labelSelector"), params.get("ns")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                st = server.state
                try:
                    while time.monotonic() < deadline:
                        with st.cond:
                            new = [e for e in st.events if e[0] > since]
                            if not new:
                                st.cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                                continue
                        for rev, kind, obj in new:
                            since = rev
                            meta = obj["metadata"]
                            if ns and meta["namespace"] != ns:
                                continue
                            if not matches(selector, meta.get("labels") or {}):
                                continue
                            line = (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> K8sTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- object semantics -----------------------------------------------------------------------
    def _stamp(self, obj: dict[str, Any], ns: str | None) -> dict[str, Any]:
        st = self.state
        st.revision += 1
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if ns is not None:
            meta["namespace"] = ns
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(st.revision)
        return obj

    def _pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        st = self.state
        st.events.append((int(pod["metadata"]["resourceVersion"]), kind, copy.deepcopy(pod)))
        st.cond.notify_all()

    def dispatch(self, kind: str, method: str, p: dict[str, str], q: dict[str, str],
                 body: Any) -> tuple[int, Any]:  # fmt: skip
        st = self.state
        with st.cond:
            if kind == "namespaces":
                name = p.get("name")
                if method == "POST":
                    ns_name = body["metadata"]["name"]
                    if ns_name in st.namespaces:
                        raise ApiError(409, "AlreadyExists",
                                       f'namespaces "{ns_name}" already exists')  # fmt: skip
                    obj = self._stamp(body, None)
                    obj.update(kind="Namespace", apiVersion="v1", status={"phase": "Active"})
                    st.namespaces[ns_name] = obj
                    return 201, obj
                if method == "GET" and name is None:
                    return 200, {"kind": "NamespaceList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": str(st.revision)},
                                 "items": list(st.namespaces.values())}  # fmt: skip
                if method == "GET":
                    if name not in st.namespaces:
                        raise ApiError(404, "NotFound", f'namespaces "{name}" not found')
                    return 200, st.namespaces[name]
            if kind in ("pods", "all_pods"):
                return self._pods(method, p.get("ns"), p.get("name"), q, body)
            if kind == "pod_status":
                key = (p["ns"], p["name"])
                if key not in st.pods:
                    raise ApiError(404, "NotFound", f'pods "{p["name"]}" not found')
                pod = st.pods[key]
                if method == "PATCH":
                    pod["status"] = {**pod.get("status", {}), **(body.get("status") or {})}
                elif method == "PUT":
                    pod["status"] = body.get("status") or {}
                else:
                    return 200, pod
                self._stamp(pod, p["ns"])
                self._pod_event("MODIFIED", pod)
                return 200, pod
            if kind == "pod_log":
                key = (p["ns"], p["name"])
                if key not in st.pods:
                    raise ApiError(404, "NotFound", f'pods "{p["name"]}" not found')
                lines = st.logs.get(key, "").splitlines()
                tail = q.get("tailLines")
                if tail is not None:
                    lines = lines[-int(tail):] if int(tail) > 0 else []
                return 200, "".join(line + "\n" for line in lines)
            if kind == "podgroups":
                return self._podgroups(method, p["ns"], p.get("name"), q, body)
            if kind == "secrets":
                return self._secrets(method, p["ns"], p.get("name"), q, body)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {kind}")

    def _pods(self, method: str, ns: str | None, name: str | None, q: dict[str, str],
              body: Any) -> tuple[int, Any]:  # fmt: skip
        st = self.state
        if method == "POST":
            assert ns is not None
            if ns not in st.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            pod_name = (body.get("metadata") or {}).get("name")
            if (ns, pod_name) in st.pods:
                raise ApiError(409, "AlreadyExists", f'pods "{pod_name}" already exists')
            pod = self._stamp(body, ns)
            pod.update(kind="Pod", apiVersion="v1")
            pod["status"] = {"phase": "Pending"}
            st.pods[(ns, pod_name)] = pod
            self._pod_event("ADDED", pod)
            return 201, pod
        if method == "GET" and name is None:
            items = [pod for (pns, _), pod in sorted(st.pods.items())
                     if (ns is None or pns == ns)
                     and matches(q.get("labelSelector"), pod["metadata"].get("labels") or {})]
            return 200, {"kind": "PodList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": str(st.revision)}, "items": items}
        assert ns is not None and name is not None
        if (ns, name) not in st.pods:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        if method == "GET":
            return 200, st.pods[(ns, name)]
        if method == "DELETE":
            pod = st.pods.pop((ns, name))
            st.logs.pop((ns, name), None)
            self._stamp(pod, ns)
            self._pod_event("DELETED", pod)
            return 200, pod
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on pods")

    def _podgroups(self, method: str, ns: str, name: str | None, q: dict[str, str],
                   body: Any) -> tuple[int, Any]:  # fmt: skip
        st = self.state
        if method == "POST":
            if ns not in st.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            pg_name = body["metadata"]["name"]
            if (ns, pg_name) in st.podgroups:
                raise ApiError(409, "AlreadyExists", f'podgroups "{pg_name}" already exists')
            pg = self._stamp(body, ns)
            pg.setdefault("status", {"phase": "Pending"})
            st.podgroups[(ns, pg_name)] = pg
            return 201, pg
        if method == "GET" and name is None:
            items = [g for (gns, _), g in sorted(st.podgroups.items()) if gns == ns
                     and matches(q.get("labelSelector"), g["metadata"].get("labels") or {})]
            return 200, {"kind": "PodGroupList", "apiVersion": "scheduling.volcano.sh/v1beta1",
                         "metadata": {"resourceVersion": str(st.revision)}, "items": items}
        assert name is not None
        if (ns, name) not in st.podgroups:
            raise ApiError(404, "NotFound", f'podgroups.scheduling.volcano.sh "{name}" not found')
        if method == "GET":
            return 200, st.podgroups[(ns, name)]
        if method == "DELETE":
            return 200, st.podgroups.pop((ns, name))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on podgroups")

    def _secrets(self, method: str, ns: str, name: str | None, q: dict[str, str],
                 body: Any) -> tuple[int, Any]:  # fmt: skip
        """Secrets as the API stores them: ``stringData`` is merged into base64 ``data``."""
        st = self.state
        if method == "POST":
            if ns not in st.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            s_name = (body.get("metadata") or {}).get("name")
            if (ns, s_name) in st.secrets:
                raise ApiError(409, "AlreadyExists", f'secrets "{s_name}" already exists')
            secret = self._stamp(body, ns)
            data = dict(secret.get("data") or {})
            for k, v in (secret.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            secret.update(kind="Secret", apiVersion="v1", data=data,
                          type=secret.get("type") or "Opaque")  # fmt: skip
            st.secrets[(ns, s_name)] = secret
            return 201, secret
        if method == "GET" and name is None:
            items = [x for (sns, _), x in sorted(st.secrets.items()) if sns == ns
                     and matches(q.get("labelSelector"), x["metadata"].get("labels") or {})]
            return 200, {"kind": "SecretList", "apiVersion": "v1",
                         "metadata": {"resourceVersion": str(st.revision)}, "items": items}
        assert name is not None
        if (ns, name) not in st.secrets:
            raise ApiError(404, "NotFound", f'secrets "{name}" not found')
        if method == "GET":
            return 200, st.secrets[(ns, name)]
        if method == "DELETE":
            st.secrets.pop((ns, name))
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on secrets")

    # -- what tests do as kubelet ----------------------------------------------------------------
    def set_log(self, ns: str, name: str, text: str) -> None:
        with self.state.cond:
            self.state.logs[(ns, name)] = text
