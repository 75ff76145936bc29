"""`GrpcUser`: a Locust user that makes gRPC calls, counted by the experiment's plugin exactly as
HTTP requests are. Subclass it in your own locustfile (never imported by chaosproxy itself:
importing Locust patches the process with gevent).

```python
from locust import task
from chaosproxy.experiment.loadgen.grpc_user import GrpcUser

class Shopper(GrpcUser):
    @task
    def get_item(self) -> None:
        self.call("/demo.Items/Get", b"7")          # bytes in, bytes out: no generated code
        self.server_stream("/demo.Items/Watch", b"7")       # every answer, read to the end
        self.client_stream("/demo.Items/Put", [b"1", b"2"])  # the one answer
        self.bidi_stream("/demo.Items/Sync", [b"1", b"2"])   # every answer
        # or generated stubs on the intercepted channel:
        # ItemsStub(self.channel).Get(GetRequest(id=7))
```

Every call on `self.channel`, unary or streaming, fires one Locust `request` event when it ends:
request type `grpc`, the full method as its name, the time until its final status (a stream's:
until its last answer was read), the bytes received (every answer of a stream), and an exception
when the status is not OK (`GrpcStatusError`, whose text starts with the status name, so
Locust's failure table groups by it); the context carries `grpc_status` (the name) and the
user's id (`chaos_user`). A stream of answers ends when it is read to its end, fails, or is
cancelled (`cancel()`: CANCELLED); one left unread is never counted. Each call carries the
metadata `x-chaos-user` (the user's id: the proxy tells users apart and splits cohorts by it)
and, in an experiment, `x-chaos-run` (the run id), the gRPC spelling of the headers the HTTP
users send. The target is the experiment's `target` (`http://HOST:PORT`: h2c with prior
knowledge; `https://`: TLS).

grpcio's own I/O is made cooperative with gevent (`grpc.experimental.gevent`) when this module
is imported, so hundreds of users share one Locust process as HTTP users do.
"""

from __future__ import annotations

import itertools
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

try:
    import grpc
    import grpc.experimental.gevent as grpc_gevent
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("gRPC load needs grpcio: pip install 'chaosproxy[grpc,loadtest]'") from e
from locust import User

grpc_gevent.init_gevent()

RUN_METADATA = "x-chaos-run"
USER_METADATA = "x-chaos-user"
OPTIONS = [("grpc.enable_http_proxy", 0)]  # the experiment's target, never an env proxy

_ids = itertools.count(1)


class GrpcStatusError(Exception):
    """A call that ended with a status other than OK: `NAME: details`."""

    def __init__(self, status: str, details: str) -> None:
        super().__init__(f"{status}: {details}" if details else status)
        self.status = status

    def __repr__(self) -> str:  # Locust's failure table shows the repr: the status first
        return str(self)


_Fields = namedtuple(
    "_Fields", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
)


class _Details(_Fields, grpc.ClientCallDetails):  # type: ignore[misc]
    """A call's details with our metadata added (ClientCallDetails has no constructor)."""


def _size(message: Any) -> int:
    if isinstance(message, bytes | bytearray):
        return len(message)
    size = getattr(message, "ByteSize", None)
    return int(size()) if callable(size) else 0


class _Timing:
    """One call from its start: fires its `request` event once, when it ended."""

    def __init__(self, user: GrpcUser, method: str) -> None:
        self.user = user
        self.method = method
        self.name = user.call_name or method
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.length = 0  # bytes received so far
        self.fired = False

    def ended(self, error: grpc.RpcError | None) -> None:
        if self.fired:
            return
        self.fired = True
        exception: BaseException | None = None
        status = "OK"
        if error is not None:  # the call itself: code() and details()
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            status = code.name if code is not None else "UNKNOWN"
            text = (error.details() if hasattr(error, "details") else "") or ""
            exception = GrpcStatusError(status, text)
        user = self.user
        user.environment.events.request.fire(
            request_type="grpc",
            name=self.name,
            response_time=(time.perf_counter() - self.t0) * 1000.0,
            response_length=self.length,
            response=None,
            exception=exception,
            start_time=self.started,
            url=self.method,
            context={**user.context(), "grpc_status": status},
        )


class _Answers:
    """A streaming call's answers (server or bidirectional streaming) as the task reads them;
    the call is counted when they end (read to the end, failed, or cancelled). Anything else
    of the call (`code()`, `trailing_metadata()`, ...) is the call's own."""

    def __init__(self, call: Any, timing: _Timing) -> None:
        self._call = call
        self._timing = timing

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            message = next(self._call)
        except StopIteration:
            self._timing.ended(None)
            raise
        except grpc.RpcError as e:
            self._timing.ended(e)
            raise
        self._timing.length += _size(message)
        return message

    def cancel(self) -> bool:
        cancelled = bool(self._call.cancel())
        if cancelled:
            self._timing.ended(_Cancelled())
        return cancelled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Cancelled(grpc.RpcError):  # type: ignore[misc]
    """What a call cancelled by its task ended with."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return "cancelled by the task"


class _Counting(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the metadata, times every kind of call and fires Locust's `request` event."""

    def __init__(self, user: GrpcUser) -> None:
        self.user = user

    def _start(self, details: Any) -> tuple[Any, _Timing]:
        user = self.user
        metadata = [*(details.metadata or ()), *user.chaos_metadata()]
        details = _Details(
            details.method,
            details.timeout if details.timeout is not None else user.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        return details, _Timing(user, method)

    def _one_answer(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        details, timing = self._start(details)
        call = continuation(details, request)
        try:
            timing.length = _size(call.result())
            timing.ended(None)
        except grpc.RpcError as e:
            timing.ended(e)
        return call

    def _answers(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        details, timing = self._start(details)
        return _Answers(continuation(details, request), timing)

    intercept_unary_unary = _one_answer
    intercept_stream_unary = _one_answer  # a client stream: one answer too
    intercept_unary_stream = _answers
    intercept_stream_stream = _answers


class GrpcUser(User):
    """A user with a gRPC channel to the experiment's target (`self.channel`, intercepted)."""

    abstract = True
    timeout: float | None = 5.0  # each call's deadline unless it sets its own (seconds)
    options: Sequence[tuple[str, Any]] = OPTIONS  # channel options

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.user_id = f"u{next(_ids)}"
        self.call_name: str | None = None
        opts = environment.parsed_options
        self.run_id = str(getattr(opts, "chaos_run_id", "") or "") if opts else ""
        target, secure = channel_target(self.host or "")
        raw = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=self.options)
            if secure
            else grpc.insecure_channel(target, options=self.options)
        )
        self._raw = raw
        self.channel = grpc.intercept_channel(raw, _Counting(self))
        self._stubs: dict[tuple[str, str], Any] = {}

    def context(self) -> dict[str, Any]:
        """The user's id on every request's event (the plugin labels its cohort with it)."""
        return {"chaos_user": self.user_id}

    def chaos_metadata(self) -> list[tuple[str, str]]:
        md = [(USER_METADATA, self.user_id)]
        if self.run_id:
            md.append((RUN_METADATA, self.run_id))
        return md

    def call(
        self,
        method: str,
        request: bytes = b"",
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        name: str | None = None,
    ) -> bytes | None:
        """One unary call of `method` (`/package.Service/Method`) with the request's serialized
        bytes; the answer's bytes, or None when the status was not OK (already counted as a
        failure: a task goes on to its next call)."""
        answer: bytes | None = self._invoke("unary_unary", method, request, metadata, timeout, name)
        return answer

    def server_stream(
        self,
        method: str,
        request: bytes = b"",
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        name: str | None = None,
    ) -> list[bytes] | None:
        """A server-streaming call, its answers read to the end: their bytes, or None when the
        status was not OK (counted as one failed request)."""
        answers: list[bytes] | None = self._invoke(
            "unary_stream", method, request, metadata, timeout, name
        )
        return answers

    def client_stream(
        self,
        method: str,
        requests: Iterable[bytes],
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        name: str | None = None,
    ) -> bytes | None:
        """A client-streaming call sending `requests`: the answer's bytes, or None."""
        answer: bytes | None = self._invoke(
            "stream_unary", method, iter(requests), metadata, timeout, name
        )
        return answer

    def bidi_stream(
        self,
        method: str,
        requests: Iterable[bytes],
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        name: str | None = None,
    ) -> list[bytes] | None:
        """A bidirectional call sending `requests` while its answers are read to the end:
        their bytes, or None."""
        answers: list[bytes] | None = self._invoke(
            "stream_stream", method, iter(requests), metadata, timeout, name
        )
        return answers

    def _invoke(
        self,
        kind: str,
        method: str,
        request: Any,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
        name: str | None,
    ) -> Any:
        """One call of `kind` (the channel's method that makes it); None when not OK."""
        stub = self._stubs.get((kind, method))
        if stub is None:
            stub = self._stubs[(kind, method)] = getattr(self.channel, kind)(method)
        self.call_name = name
        try:
            answer = stub(request, metadata=tuple(metadata) or None, timeout=timeout)
            return list(answer) if kind.endswith("_stream") else answer
        except grpc.RpcError:
            return None
        finally:
            self.call_name = None

    def on_stop(self) -> None:
        self._raw.close()


def channel_target(host: str) -> tuple[str, bool]:
    """Locust's `--host` (`http://HOST:PORT`, `https://...`, or a bare `HOST:PORT`) as a gRPC
    channel target and whether it is TLS."""
    if "://" not in host:
        return host, False
    u = urlsplit(host)
    secure = u.scheme == "https"
    port = u.port or (443 if secure else 80)
    hostname = u.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{hostname}:{port}", secure
