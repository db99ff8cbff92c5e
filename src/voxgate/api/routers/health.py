"""Liveness and readiness probes for load balancers and orchestrators."""

from fastapi import APIRouter, Request

from voxgate.api.deps import get_pipeline

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict:
    """200 once every model is loaded and warmed up; 503 (with the reason) until then."""
    engines = get_pipeline(request).engines
    return {"status": "ready", "models": {"stt": engines.stt.name, "llm": engines.llm.name, "tts": engines.tts.name}}
