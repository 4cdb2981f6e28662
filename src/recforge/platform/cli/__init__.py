"""``recforge platform``: serve the platform, submit and inspect jobs, manage tokens and config.

Client commands talk to a server at ``--url`` (env ``RECFORGE_PLATFORM_URL``, default
``http://127.0.0.1:8765``) with ``--token`` (env ``RECFORGE_TOKEN``). ``--json`` prints the
server's JSON on stdout for scripts; tables and messages otherwise. Exit codes: 0 ok, 1 the
server refused the request (its message is printed), 2 bad usage or unreachable server.

One module per command group (``jobs``, ``dags``, ``schedules``, ``services``, ``config``,
``tokens``, ``serve``), all on the one typer app of :mod:`.common`. This package stays light on
import (typer and the small client only); the server stack (FastAPI, uvicorn, SQLAlchemy) is
imported inside the commands that need it.
"""

from recforge.platform.cli import config, dags, jobs, schedules, serve, services, tokens
from recforge.platform.cli.common import app, default_store_url, state_dir

__all__ = ["app", "config", "dags", "default_store_url", "jobs", "schedules", "serve", "services",
           "state_dir", "tokens"]
