"""Templates and the cluster/group/queue configuration, kept as JSON bodies."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from recforge.platform.model.config import config_kind
from recforge.platform.store.engine import StoreBase
from recforge.platform.store.tables import config_t, templates_t

__all__ = ["CatalogStore"]


class CatalogStore(StoreBase):
    """Templates and configuration (see the module docstring)."""

    # -- templates ----------------------------------------------------------------------------
    def put_template(self, name: str, owner: str, body: dict[str, Any]) -> None:
        """Create or replace a template."""
        now = self.clock()
        with self._write() as conn:
            exists = conn.execute(
                sa.select(templates_t.c.name).where(templates_t.c.name == name)
            ).first()
            if exists:
                conn.execute(
                    templates_t.update()
                    .where(templates_t.c.name == name)
                    .values(owner=owner, body=body, updated_at=now)
                )
            else:
                conn.execute(
                    templates_t.insert().values(
                        name=name, owner=owner, body=body, created_at=now, updated_at=now
                    )
                )

    def get_template(self, name: str) -> dict[str, Any] | None:
        """``{"name", "owner", "body"}`` or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(templates_t).where(templates_t.c.name == name)).first()
        if row is None:
            return None
        return {"name": row.name, "owner": row.owner, "body": row.body}

    def list_templates(self) -> list[dict[str, Any]]:
        """All templates by name."""
        with self._read() as conn:
            rows = conn.execute(sa.select(templates_t).order_by(templates_t.c.name)).all()
        return [{"name": r.name, "owner": r.owner, "body": r.body} for r in rows]

    def delete_template(self, name: str) -> bool:
        """Delete a template; False if it did not exist."""
        with self._write() as conn:
            return (
                conn.execute(templates_t.delete().where(templates_t.c.name == name)).rowcount == 1
            )

    # -- cluster/group/queue config -----------------------------------------------------------
    def put_config(self, kind: str, name: str, body: dict[str, Any]) -> None:
        """Create or replace one cluster/group/queue definition."""
        kind = config_kind(kind).name
        now = self.clock()
        with self._write() as conn:
            conn.execute(config_t.delete().where(config_t.c.kind == kind, config_t.c.name == name))
            conn.execute(config_t.insert().values(kind=kind, name=name, body=body, updated_at=now))

    def get_config(self, kind: str) -> dict[str, dict[str, Any]]:
        """All definitions of one kind, ``{name: body}``."""
        kind = config_kind(kind).name
        with self._read() as conn:
            rows = conn.execute(
                sa.select(config_t.c.name, config_t.c.body)
                .where(config_t.c.kind == kind)
                .order_by(config_t.c.name)
            ).all()
        return {r.name: r.body for r in rows}

    def delete_config(self, kind: str, name: str) -> bool:
        """Delete one definition; False if absent."""
        kind = config_kind(kind).name
        with self._write() as conn:
            stmt = config_t.delete().where(config_t.c.kind == kind, config_t.c.name == name)
            return conn.execute(stmt).rowcount == 1
