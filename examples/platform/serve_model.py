"""Serve a trained recforge model over HTTP: the server behind ``service-job.yaml``.

Train once (EASE on the shipped demo interactions; seeded data, deterministic model)::

    python examples/platform/serve_model.py train --out /srv/models/ease-demo

then run it as a platform service job (``recforge platform submit examples/platform/
service-job.yaml``), or alone: ``PORT=8080 python serve_model.py serve --model DIR``
(``--data`` names the training file when it is not the demo one: the model is only loaded for
the data it was trained on). It
listens on ``127.0.0.1:$PORT`` and answers

* ``GET /healthz`` -> ``ok`` (the service's readiness check),
* ``GET /recommend?user=user001&k=5`` -> ``{"user", "items", "scores", "replica"}`` through the
  model's ``recommend`` (seen items excluded); an unknown user -> 404 naming it.

SIGTERM stops it gracefully: the request in progress finishes, then it exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DEMO = Path(__file__).resolve().parents[1] / "my_interactions.csv"


def _interactions(data: str) -> Any:
    from recforge.data.io import read_csv

    return read_csv(data, "user_id", "item_id", "rating", "ts", id_type="str", implicit=True)


def train(out: str, data: str) -> None:
    from recforge.models.ease import EASE

    train_set = _interactions(data)
    model = EASE(l2_norm=50.0, n_threads=1)
    model.fit(train_set)
    model.save(out)
    print(f"saved EASE ({train_set.n_users} users, {train_set.n_items} items) to {out}")


def serve(model_dir: str, data: str) -> None:
    from recforge.models import load_model

    # The training data's checksum must match the model's (load refuses another data set).
    model: Any = load_model(model_dir, data=_interactions(data))
    replica = os.environ.get("RECFORGE_SERVICE_REPLICA", "")
    known = set(model.user_ids_.tolist())

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any] | str) -> None:
            raw = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str)
                             else "application/json")  # fmt: skip
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._send(200, "ok")
                return
            if url.path != "/recommend":
                self._send(404, {"error": f"no route {url.path}"})
                return
            query = parse_qs(url.query)
            user = query.get("user", [""])[0]
            try:
                k = int(query.get("k", ["10"])[0])
            except ValueError:
                self._send(422, {"error": "k must be an integer"})
                return
            if user not in known:
                self._send(404, {"error": f"unknown user {user!r}"})
                return
            recs = model.recommend([user], k=k).lists().get(user, [])
            self._send(200, {"user": user, "items": [i for i, _ in recs],
                             "scores": [round(float(s), 6) for _, s in recs],
                             "replica": replica})  # fmt: skip

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}",
                  flush=True)  # fmt: skip

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving {model_dir} on 127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()
    print("stopped", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--data", default=str(DEMO))
    s = sub.add_parser("serve")
    s.add_argument("--model", required=True)
    s.add_argument("--data", default=str(DEMO), help="the training interactions (checked)")
    args = parser.parse_args(argv)
    if args.cmd == "train":
        train(args.out, args.data)
    else:
        serve(args.model, args.data)


if __name__ == "__main__":
    main(sys.argv[1:])
