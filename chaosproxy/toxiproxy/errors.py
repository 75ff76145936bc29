"""The Toxiproxy API's one error type, and the messages its clients know.

Toxiproxy answers every failure as `{"error": MESSAGE, "status": CODE}`; clients branch on the
status code (409 "exists", 404 "not found", 400 "invalid") and some show the message. The
messages below are Toxiproxy's own wording so that a client matching on them keeps working.
"""

from __future__ import annotations


class ToxiproxyError(Exception):
    """A failure the API answers as `{"error": message, "status": status}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def joined(self, detail: str) -> ToxiproxyError:
        """The same error with a detail after a colon, as Toxiproxy words them."""
        return ToxiproxyError(self.status, f"{self.message}: {detail}")


BAD_BODY = ToxiproxyError(400, "bad request body")
MISSING_FIELD = ToxiproxyError(400, "missing required field")
PROXY_NOT_FOUND = ToxiproxyError(404, "proxy not found")
PROXY_EXISTS = ToxiproxyError(409, "proxy already exists")
INVALID_STREAM = ToxiproxyError(400, "stream was invalid, can be either upstream or downstream")
INVALID_TOXIC_TYPE = ToxiproxyError(400, "invalid toxic type")
TOXIC_EXISTS = ToxiproxyError(409, "toxic already exists")
TOXIC_NOT_FOUND = ToxiproxyError(404, "toxic not found")


def bad_body(detail: str) -> ToxiproxyError:
    return BAD_BODY.joined(detail)
