"""Model management, like Ollama's: list, pull, import, create, delete, load/unload, defaults; voices.

Listing is open to every user (OpenAI clients call `GET /v1/models`); every change is
admin-only. Registry calls block (pip, file copies, loading weights), so they run in a
thread and the event loop keeps serving.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, Response
from fastapi.responses import StreamingResponse

from voxgate.api.deps import DatabaseDep, ModelsDep, UserDep, admin_user
from voxgate.api.schemas import CreateBody, DefaultsBody, ImportBody, PullBody
from voxgate.catalog import CATALOG, Role
from voxgate.errors import Conflict, NotFound, VoxgateError, internal_error
from voxgate.registry import ModelInfo
from voxgate.store import repo

router = APIRouter(tags=["models"])
admin = [Depends(admin_user)]


def _model_json(model: ModelInfo) -> dict:
    # OpenAI's model object first, so its clients list voxgate's models unchanged.
    return {"id": model.name, "object": "model", "created": 0, "owned_by": "voxgate", **model.to_json()}


@router.get("/v1/models")
async def list_models(registry: ModelsDep) -> dict:
    """Every model with its role, source, size, license, state and whether it is its role's default."""
    return {"object": "list", "data": [_model_json(m) for m in await asyncio.to_thread(registry.all_models)]}


@router.get("/v1/models/defaults")
async def get_defaults(registry: ModelsDep) -> dict:
    return {role.value: name for role, name in registry.defaults.items()}


@router.put("/v1/models/defaults", dependencies=admin)
async def set_defaults(body: DefaultsBody, registry: ModelsDep) -> dict:
    """Switch a role's default at run time (loaded first, so a failure keeps the old one).
    Start-up defaults come from the settings; a restart returns to them."""
    wanted = {role: name for role in Role if (name := getattr(body, role.value))}
    await asyncio.to_thread(registry.set_defaults, wanted)
    return {role.value: name for role, name in registry.defaults.items()}


@router.get("/v1/models/{name}")
async def get_model(name: str, registry: ModelsDep) -> dict:
    return _model_json(await asyncio.to_thread(registry.info, name))


@router.post("/v1/models/pull", dependencies=admin)
async def pull(body: PullBody, registry: ModelsDep) -> Response:
    """Install a catalog model's packages and join and verify its files, streaming progress
    as NDJSON (`{"status": ..., "completed": n, "total": N}` ... `{"status": "success"}`)."""
    if body.name not in CATALOG:
        raise NotFound(f"{body.name!r} is not in the catalog; GET /v1/models lists it", code="model_not_found")
    if (await asyncio.to_thread(registry.info, body.name)).state == "preparing":
        raise Conflict(f"{body.name!r} is already being pulled", code="pull_in_progress")
    if not body.stream:
        await asyncio.to_thread(registry.pull, body.name, lambda _: None)
        return Response(json.dumps({"status": "success", "name": body.name}), media_type="application/json")

    loop = asyncio.get_running_loop()
    reports: asyncio.Queue[dict | None] = asyncio.Queue()
    work = asyncio.create_task(
        asyncio.to_thread(
            registry.pull, body.name, lambda report: loop.call_soon_threadsafe(reports.put_nowait, report)
        )
    )
    work.add_done_callback(lambda _: reports.put_nowait(None))

    async def lines() -> AsyncIterator[str]:
        while (report := await reports.get()) is not None:
            yield json.dumps(report) + "\n"
        try:
            await work
        except VoxgateError as exc:
            yield json.dumps({"status": "error", **exc.envelope()}) + "\n"
        except Exception as exc:
            yield json.dumps({"status": "error", **internal_error().envelope(), "detail": str(exc)}) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/v1/models/import", dependencies=admin, status_code=201)
async def import_model(body: ImportBody, registry: ModelsDep) -> dict:
    """Copy a model file or directory on the server into the cache, verifying its sha256."""
    model = await asyncio.to_thread(registry.import_model, body.name, body.role, Path(body.path), body.sha256)
    return _model_json(model)


@router.post("/v1/models/create", dependencies=admin, status_code=201)
async def create_model(body: CreateBody, registry: ModelsDep, user: UserDep, db: DatabaseDep) -> dict:
    """A custom model: `base` plus a persona (from `persona`, overridden field by field)."""
    fields = {"system": None, "voice": None, "language": None, "temperature": None, "max_tokens": None}
    if body.persona:
        async with db.session() as session:
            spec = await repo.get_persona(session, user, body.persona)
        fields.update(spec.as_fields())
    fields.update(body.model_dump(include=set(fields), exclude_none=True))
    return _model_json(await asyncio.to_thread(registry.create, body.name, body.base, fields))


@router.delete("/v1/models/{name}", dependencies=admin, status_code=204)
async def delete_model(name: str, registry: ModelsDep) -> Response:
    await asyncio.to_thread(registry.delete, name)
    return Response(status_code=204)


@router.post("/v1/models/{name}/load", dependencies=admin)
async def load_model(name: str, registry: ModelsDep) -> dict:
    await asyncio.to_thread(registry.load, name)
    return _model_json(await asyncio.to_thread(registry.info, name))


@router.post("/v1/models/{name}/unload", dependencies=admin)
async def unload_model(name: str, registry: ModelsDep) -> dict:
    if not registry.unload(name):
        raise Conflict(f"{name!r} is not loaded", code="not_loaded")
    return _model_json(await asyncio.to_thread(registry.info, name))


@router.get("/v1/voices")
async def list_voices(registry: ModelsDep) -> dict:
    """Every voice with its language, gender and engine: the TTS models on disk (Piper, hibari,
    Kokoro's five Japanese voices once pulled), a remote TTS, and espeak-ng's ~100 languages."""
    voices = await asyncio.to_thread(registry.voices)
    default = registry.defaults[Role.TTS]
    return {"object": "list", "data": [{**v.__dict__, "default": v.id == default} for v in voices]}
