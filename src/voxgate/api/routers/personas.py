"""Personas: the built-in ones and the user's own."""

from dataclasses import replace

from fastapi import APIRouter, status

from voxgate.api.deps import DatabaseDep, SettingsDep, UserDep
from voxgate.api.schemas import PersonaIn, PersonaOut, PersonaPatch
from voxgate.personas import PersonaSpec
from voxgate.store import repo

router = APIRouter(tags=["personas"])


def _out(spec: PersonaSpec, settings) -> PersonaOut:
    # The built-in assistant speaks with the configured default prompt: show that one.
    return PersonaOut.model_validate(replace(spec, system_prompt=spec.system_prompt or settings.system_prompt))


@router.get("/v1/personas")
async def list_personas(user: UserDep, db: DatabaseDep, settings: SettingsDep) -> list[PersonaOut]:
    async with db.session() as session:
        return [_out(spec, settings) for spec in await repo.list_personas(session, user)]


@router.get("/v1/personas/{name}")
async def get_persona(name: str, user: UserDep, db: DatabaseDep, settings: SettingsDep) -> PersonaOut:
    async with db.session() as session:
        return _out(await repo.get_persona(session, user, name), settings)


@router.post("/v1/personas", status_code=status.HTTP_201_CREATED)
async def create_persona(body: PersonaIn, user: UserDep, db: DatabaseDep, settings: SettingsDep) -> PersonaOut:
    async with db.session() as session, session.begin():
        spec = await repo.create_persona(session, user, PersonaSpec(**body.model_dump()))
    return _out(spec, settings)


@router.patch("/v1/personas/{name}")
async def update_persona(
    name: str, body: PersonaPatch, user: UserDep, db: DatabaseDep, settings: SettingsDep
) -> PersonaOut:
    async with db.session() as session, session.begin():
        spec = await repo.update_persona(session, user, name, body.model_dump(exclude_unset=True))
    return _out(spec, settings)


@router.delete("/v1/personas/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_persona(name: str, user: UserDep, db: DatabaseDep) -> None:
    async with db.session() as session, session.begin():
        await repo.delete_persona(session, user, name)
