"""Liveness and readiness probes for load balancers and orchestrators, and Prometheus metrics."""

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from voxgate.api.deps import get_pipeline
from voxgate.api.middleware import shutting_down
from voxgate.errors import Unauthorized, Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict:
    """200 once every default model is loaded and warmed up; 503 (with the reason) until then,
    and again from the moment the server starts shutting down."""
    if request.app.state.shutdown.draining:
        raise shutting_down()
    registry = get_pipeline(request).registry
    loaded = set(registry.loaded())
    missing = [name for name in registry.defaults.values() if name not in loaded]
    if missing:
        error = request.app.state.load_error
        raise Unavailable(
            f"not loaded: {', '.join(missing)}" + (f" ({error})" if error else ""), code="models_failed", retry_after=30
        )
    return {"status": "ready", "models": {role.value: name for role, name in registry.defaults.items()}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (see README, Metrics). Open like the probes, unless
    VOXGATE_METRICS_TOKEN is set: then it needs `Authorization: Bearer <that token>`."""
    token = request.app.state.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthorized(
                "/metrics needs `Authorization: Bearer <VOXGATE_METRICS_TOKEN>`", code="invalid_metrics_token"
            )
    encode, content_type = choose_encoder(request.headers.get("accept", ""))  # OpenMetrics if asked for
    return Response(encode(REGISTRY), media_type=content_type)
