"""Clusters, groups and queues: readable by every user, replaced by admins (one pair of routes
per configuration kind of :data:`~recforge.platform.model.config.CONFIG_KINDS`)."""


from typing import Annotated, Any

from fastapi import APIRouter, Body

from recforge.platform.api.auth import AdminDep, UserDep
from recforge.platform.api.routes import ServiceDep, err
from recforge.platform.model.config import CONFIG_KINDS, ConfigKind

router = APIRouter(tags=["config"])


def _add(kind: ConfigKind) -> None:
    list_model = list[kind.model]  # type: ignore[name-defined]

    def get_items(service: ServiceDep, user: UserDep) -> list[Any]:
        return service.config_items(kind.plural)

    def put_items(
        service: ServiceDep,
        admin: AdminDep,
        items: Annotated[list_model, Body()],  # type: ignore[valid-type]
    ) -> list[Any]:
        return service.replace_config(admin, kind.plural, list(items))

    get_items.__doc__ = f"Every {kind.name} definition."
    put_items.__doc__ = (
        f"Replace every {kind.name} definition (admin only); the whole configuration must stay "
        "consistent (409 naming the broken reference otherwise) and the scheduler uses it at "
        "once."
    )
    # Unset fields stay unset in answers, so a GET body PUT back means the same (a quota that
    # names no pods keeps following the cluster's pods).
    router.add_api_route(f"/{kind.plural}", get_items, methods=["GET"], response_model=list_model,
                         response_model_exclude_unset=True, name=f"get_{kind.plural}")
    router.add_api_route(f"/{kind.plural}", put_items, methods=["PUT"], response_model=list_model,
                         response_model_exclude_unset=True, name=f"put_{kind.plural}",
                         responses=err(403, 409))


for _kind in CONFIG_KINDS:
    _add(_kind)
