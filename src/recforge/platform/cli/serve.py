"""``recforge platform serve --config FILE``: the one way to run the platform."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from recforge.platform.cli.common import app, fail, state_dir


@app.command("serve")
def serve_cmd(
    config: Annotated[
        Path,
        typer.Option(help="Deployment YAML: clusters, groups, queues (stored, replacing same "
                     "names) plus store, backends, scheduler, jobs and api settings."),
    ],
    store: Annotated[
        str | None,
        typer.Option(envvar="RECFORGE_STORE_URL", show_default=False,
                     help="Store URL, overriding the file's (default: sqlite:///STATE_DIR/"
                     "platform.db). Prefer the file or the env var: command lines are "
                     "world-readable."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (the file's api.host, "
                                             "default 127.0.0.1).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, show_default=False,
                                             help="TCP port (the file's api.port).")] = None,
    loop: Annotated[
        bool, typer.Option(help="Run the scheduling loop (off: API only, for benchmarks).")
    ] = True,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="RECFORGE_ADMIN_TOKEN", show_default=False,
                     help="Bootstrap admin token (never stored)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "INFO",
) -> None:
    """Run the platform: REST API (uvicorn) and the scheduling loop in one process.

    Refuses to start, naming the problem, when the file is invalid, a cluster type has no
    backend, or a group's run_as user cannot be used.
    """
    import logging
    import signal

    import uvicorn

    from recforge.platform.logs import JsonLogFormatter
    from recforge.platform.model.deployment import parse_deployment
    from recforge.platform.model.specs import SpecError
    from recforge.platform.runtime.bootstrap import build

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=log_level.upper(), handlers=[handler], force=True)
    try:
        deployment_config = parse_deployment(config.read_text(), source=str(config))
    except (OSError, SpecError) as exc:
        fail(str(exc), 2)
    # Everything the service creates is private to it unless made otherwise on purpose.
    os.umask(0o077)
    sdir = Path(deployment_config.state_dir).expanduser() if deployment_config.state_dir \
        else state_dir()  # fmt: skip
    try:
        deployment = build(deployment_config, state_dir=sdir.resolve(), store_url=store)
    except Exception as exc:  # bad URL, unreachable database, missing backend, unknown user
        fail(f"cannot start the platform: {exc}", 2)
    api = deployment_config.api
    bind_host = host or api.host
    bind_port = api.port if port is None else port
    app_ = deployment.app(admin_token)
    if loop:
        deployment.start()
    else:
        deployment.service.recover()
    backends = ", ".join(sorted(deployment.backends))
    typer.echo(f"platform API on http://{bind_host}:{bind_port} (store "
               f"{deployment.store.dialect}, backends {backends}, loop "
               f"{'on' if loop else 'off'})", err=True)  # fmt: skip
    # uvicorn shuts down on SIGTERM/SIGINT and then re-raises the signal to the handler that
    # was installed before it; with the default one the process would die right there and skip
    # the clean-up below (stopping the loop between ticks, closing the store).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(app_, host=bind_host, port=bind_port, log_level="warning", access_log=False)
    finally:
        deployment.stop()
