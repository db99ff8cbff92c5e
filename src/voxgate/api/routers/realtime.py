"""`/v1/realtime`: a voice session over one WebSocket, in voxgate's own protocol (message
schema in the README) or in OpenAI's Realtime API protocol (`openai_realtime.py`).

Both live on one path, since OpenAI's SDK appends `/realtime` to the base URL. A client
speaks OpenAI's protocol when it names a `model` in the URL, sends an `Authorization`
header, or offers the `realtime` subprotocol (as OpenAI's SDKs do); voxgate's own clients
do none of these (browsers cannot set headers: they authenticate in a subprotocol or the
first message).
"""

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from voxgate import metrics
from voxgate.api.deps import authenticate, get_turns
from voxgate.api.schemas import RealtimeStart
from voxgate.catalog import Role
from voxgate.errors import BadRequest, Unauthorized, VoxgateError
from voxgate.openai_realtime import OpenAIRealtime
from voxgate.realtime import RealtimeSession, SessionOptions

router = APIRouter(tags=["realtime"])

_SUBPROTOCOL = "voxgate"
_TOKEN_PREFIX = "bearer."
_POLICY_VIOLATION = 1008
_OPENAI_SUBPROTOCOL = "realtime"
_OPENAI_KEY_PREFIX = "openai-insecure-api-key."  # how OpenAI's browser clients send a key


@router.websocket("/v1/realtime")
async def realtime(ws: WebSocket) -> None:
    offered = ws.scope.get("subprotocols", [])
    if "model" in ws.query_params or "authorization" in ws.headers or _OPENAI_SUBPROTOCOL in offered:
        await _openai(ws, offered)
    else:
        await _voxgate(ws, offered)


def _sender(ws: WebSocket):
    async def send(message: dict) -> None:
        if ws.client_state != WebSocketState.CONNECTED:
            return  # the client left; the receive loop ends the session
        try:
            await ws.send_json(message)  # awaits the socket's drain: backpressure on a slow client
        except (WebSocketDisconnect, RuntimeError):
            pass  # it left while we sent

    return send


async def _user(ws: WebSocket, token: str | None, missing: str):
    if ws.app.state.settings.auth == "off":
        return ws.app.state.local_user
    if not token:
        raise Unauthorized(missing, code="missing_token")
    return await authenticate(ws.app, token)


async def _openai(ws: WebSocket, offered: list[str]) -> None:
    token = ws.headers.get("authorization", "").removeprefix("Bearer ").strip() or next(
        (p.removeprefix(_OPENAI_KEY_PREFIX) for p in offered if p.startswith(_OPENAI_KEY_PREFIX)), None
    )
    await ws.accept(subprotocol=_OPENAI_SUBPROTOCOL if _OPENAI_SUBPROTOCOL in offered else None)
    send = _sender(ws)
    metrics.REALTIME_SESSIONS.inc()
    session = None
    try:
        try:
            user = await _user(ws, token, "send `Authorization: Bearer <API key or access token>`")
        except VoxgateError as exc:  # said in the API's error shape, then closed
            await send({"type": "error", "event_id": None, "error": {**exc.envelope()["error"], "param": None}})
            await ws.close(_POLICY_VIOLATION if isinstance(exc, Unauthorized) else 1011)
            return
        model = ws.app.state.models.known(Role.LLM, ws.query_params.get("model"))
        session = OpenAIRealtime(get_turns(ws), user, send, model=model)
        await session.start()
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            if message.get("text") is not None:
                await session.handle(message["text"])
            else:
                await session.error(
                    BadRequest(
                        "client events are JSON text messages; audio goes in input_audio_buffer.append",
                        code="invalid_event",
                    )
                )
    except WebSocketDisconnect:
        pass
    finally:
        metrics.REALTIME_SESSIONS.dec()
        if session is not None:
            await session.close()


async def _voxgate(ws: WebSocket, offered: list[str]) -> None:
    # A browser cannot set headers on a WebSocket: it may send its token as a subprotocol
    # "bearer.<token>" (never in the URL, where logs would keep it) or in the first message.
    token = next((p.removeprefix(_TOKEN_PREFIX) for p in offered if p.startswith(_TOKEN_PREFIX)), None)
    await ws.accept(subprotocol=_SUBPROTOCOL if _SUBPROTOCOL in offered else None)
    metrics.REALTIME_SESSIONS.inc()
    send = _sender(ws)
    session = None
    try:
        start = await _start_message(ws)
        user = await _user(
            ws, token or start.token, "send a token: subprotocol `bearer.<token>` or `token` in session.start"
        )
        options = SessionOptions(**start.model_dump(exclude={"type", "token"}))
        session = RealtimeSession(get_turns(ws), user, options, send)
        await send({"type": "session.ready", "conversation_id": options.conversation_id})
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                if message.get("bytes") is not None:
                    await session.on_audio(message["bytes"])
                elif message.get("text") is not None:
                    await _control(session, message["text"])
            except BadRequest as exc:  # one bad frame or message: say so, the session goes on
                await send({"type": "error", **exc.envelope()})
    except WebSocketDisconnect:
        pass
    except VoxgateError as exc:
        await send({"type": "error", **exc.envelope()})
        await ws.close(_POLICY_VIOLATION if isinstance(exc, Unauthorized) else 1011)
    finally:
        metrics.REALTIME_SESSIONS.dec()
        if session is not None:
            await session.close()  # a dropped socket stops its reply and frees everything


async def _start_message(ws: WebSocket) -> RealtimeStart:
    try:
        first = await asyncio.wait_for(ws.receive(), timeout=30)
    except TimeoutError:
        raise BadRequest("no session.start message within 30 s") from None
    if first["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(first.get("code", 1000))
    if first.get("text") is None:
        raise BadRequest("the first message must be session.start as JSON text, not binary audio")
    try:
        return RealtimeStart.model_validate_json(first["text"])
    except ValidationError as exc:
        raise BadRequest(f"the first message must be session.start: {exc.errors()[0]['msg']}") from None


async def _control(session: RealtimeSession, text: str) -> None:
    try:
        message = json.loads(text)
        kind = message["type"]
    except (json.JSONDecodeError, KeyError, TypeError):
        error = BadRequest("control messages are JSON objects with a `type`")
        await session.send({"type": "error", **error.envelope()})
        return
    if kind == "input.text" and isinstance(message.get("text"), str) and message["text"].strip():
        await session.on_text(message["text"])
    elif kind == "response.cancel":
        await session.interrupt()
    else:
        await session.send({"type": "error", **BadRequest(f"unknown or incomplete message {kind!r}").envelope()})
