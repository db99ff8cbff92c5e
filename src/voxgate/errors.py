"""Typed errors raised anywhere in voxgate; the API turns each into one JSON envelope.

Engines and the pipeline raise these without knowing about HTTP; the status code is a
class attribute so the single handler at the edge needs no mapping table.
"""


class VoxgateError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}

    def envelope(self) -> dict:
        """The JSON body every error has: {"error": {"type", "code", "message"}}."""
        return {"error": {"type": self.type, "code": self.code, "message": self.message}}


def internal_error() -> VoxgateError:
    """What a client learns of an unexpected failure; the details go to the server log only."""
    return VoxgateError("internal error; the server log has the details")


class BadRequest(VoxgateError):
    status = 400
    type = "invalid_request_error"
    code = "bad_request"


class NoSpeech(BadRequest):
    code = "no_speech"


class EmptyAudio(BadRequest):
    code = "empty_audio"


class ContextExceeded(BadRequest):
    """A prompt longer than the LLM's context. Engines raise it with the token counts they
    know (llama.cpp reports both), so the turn can fit its history by real counts."""

    code = "context_length_exceeded"

    def __init__(
        self, message: str, *, code: str | None = None, prompt_tokens: int | None = None, context: int | None = None
    ):
        super().__init__(message, code=code)
        self.prompt_tokens = prompt_tokens
        self.context = context


class UnsupportedMediaType(VoxgateError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class UnsupportedAudio(UnsupportedMediaType):
    code = "unsupported_audio"


class PayloadTooLarge(VoxgateError):
    status = 413
    type = "invalid_request_error"
    code = "too_large"


class Unauthorized(VoxgateError):
    status = 401
    type = "authentication_error"
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(VoxgateError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class Conflict(VoxgateError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class NotFound(VoxgateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class TooManyRequests(VoxgateError):
    """A client went over a rate limit; it may try again after `retry_after` s."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int):
        super().__init__(message, code=code, retry_after=retry_after)


class Unavailable(VoxgateError):
    """The server cannot take the work now; clients should retry after `retry_after` s."""

    status = 503
    type = "server_error"
    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 2):
        super().__init__(message, code=code, retry_after=retry_after)


class ModelNotReady(VoxgateError):
    """A configured model has not been prepared; `voxgate models pull` fixes it."""

    status = 503
    code = "model_not_ready"


class BackendError(VoxgateError):
    """A remote engine answered with an error or with something that is not its protocol."""

    status = 502
    code = "backend_error"


class BackendUnavailable(Unavailable):
    """A remote engine could not be reached or did not answer in time."""

    code = "backend_unavailable"
