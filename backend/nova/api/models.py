"""``/v1/models`` and the admin reload of the models file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from nova.api.deps import AdminDep, PoolDep, PrincipalDep, SettingsDep
from nova.errors import BadRequest
from nova.llm.models_file import ModelsFileError
from nova.llm.protocol import model_card

router = APIRouter(prefix="/v1", tags=["models"])
admin_router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/models")
async def list_models(principal: PrincipalDep, pool: PoolDep) -> dict[str, Any]:
    """Served names and aliases the caller may use, in OpenAI's list shape."""
    data = [
        model_card(name, pool.created, served.spec.owned_by, served.spec.context_window)
        for name, served in pool.models()
        if principal.may_use(name) or principal.may_use(served.name)
    ]
    return {"object": "list", "data": data}


@admin_router.post("/models/reload")
async def reload_models(_: AdminDep, pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """Re-read the models file without dropping requests in flight (same as SIGHUP)."""
    if settings.models_file is None:
        raise BadRequest("No models file is configured (NOVA_MODELS_FILE).")
    try:
        names = pool.reload(settings.models_file)
    except ModelsFileError as err:
        raise BadRequest(str(err), code="invalid_models_file") from None
    await pool.check_all()
    return {"reloaded": True, "models": names}
