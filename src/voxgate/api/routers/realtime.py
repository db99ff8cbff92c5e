"""`/v1/realtime`: a voice session over one WebSocket (message schema in the README)."""

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState
from pydantic import ValidationError

from voxgate import metrics
from voxgate.api.deps import authenticate, get_turns
from voxgate.api.schemas import RealtimeStart
from voxgate.errors import BadRequest, Unauthorized, VoxgateError
from voxgate.realtime import RealtimeSession, SessionOptions

router = APIRouter(tags=["realtime"])

_SUBPROTOCOL = "voxgate"
_TOKEN_PREFIX = "bearer."
_POLICY_VIOLATION = 1008


@router.websocket("/v1/realtime")
async def realtime(ws: WebSocket) -> None:
    # A browser cannot set headers on a WebSocket: it may send its token as a subprotocol
    # "bearer.<token>" (never in the URL, where logs would keep it) or in the first message.
    offered = ws.scope.get("subprotocols", [])
    token = next((p.removeprefix(_TOKEN_PREFIX) for p in offered if p.startswith(_TOKEN_PREFIX)), None)
    await ws.accept(subprotocol=_SUBPROTOCOL if _SUBPROTOCOL in offered else None)
    metrics.REALTIME_SESSIONS.inc()

    async def send(message: dict) -> None:
        if ws.client_state != WebSocketState.CONNECTED:
            return  # the client left; the receive loop ends the session
        try:
            await ws.send_json(message)  # awaits the socket's drain: backpressure on a slow client
        except (WebSocketDisconnect, RuntimeError):
            pass  # it left while we sent

    session = None
    try:
        start = await _start_message(ws)
        settings = ws.app.state.settings
        if settings.auth == "off":
            user = ws.app.state.local_user
        elif token or start.token:
            user = await authenticate(ws.app, token or start.token)
        else:
            raise Unauthorized("send a token: subprotocol `bearer.<token>` or `token` in session.start",
                               code="missing_token")
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
        await session.send({"type": "error", **BadRequest("control messages are JSON objects with a `type`").envelope()})
        return
    if kind == "input.text" and isinstance(message.get("text"), str) and message["text"].strip():
        await session.on_text(message["text"])
    elif kind == "response.cancel":
        await session.interrupt()
    else:
        await session.send({"type": "error", **BadRequest(f"unknown or incomplete message {kind!r}").envelope()})
