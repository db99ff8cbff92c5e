"""Liveness and readiness probes for load balancers and orchestrators."""

from fastapi import APIRouter, Request

from voxgate.api.deps import get_pipeline
from voxgate.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict:
    """200 once every default model is loaded and warmed up; 503 (with the reason) until then."""
    registry = get_pipeline(request).models
    loaded = set(registry.loaded())
    missing = [name for name in registry.defaults.values() if name not in loaded]
    if missing:
        error = request.app.state.load_error
        raise Unavailable(f"not loaded: {', '.join(missing)}" + (f" ({error})" if error else ""),
                          code="models_failed", retry_after=30)
    return {"status": "ready", "models": {role.value: name for role, name in registry.defaults.items()}}
