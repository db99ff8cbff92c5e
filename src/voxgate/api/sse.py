"""Server-sent events: the wire format shared by the streaming endpoints."""

import json


def sse(data: dict | str, event: str | None = None) -> str:
    """One event; `data` is sent as JSON unless it is already a string (like "[DONE]")."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n" if event else f"data: {payload}\n\n"
