"""HTTP wiring: KServe's REST application on a loopback-bound uvicorn, with body limits.

KServe's ``ModelServer`` binds 0.0.0.0 and starts gRPC unconditionally; we build its REST
application (same routes, same handlers) and run it on the host we are told.
"""

from __future__ import annotations

from siameseim_tf.serving.server import RequestTooLarge, ServeConfig, kserve
from siameseim_tf.serving.tfserving_rest import send_json as _send_json


class BodyLimit:
    """ASGI middleware: answers 413 to bodies over ``max_bytes`` without buffering them.

    Bodies with a larger Content-Length are drained (up to ``drain_cap``) and refused
    before the application sees them; chunked bodies are counted as they arrive.
    """

    def __init__(self, app, max_bytes: int, drain_cap: int = 256 * 1024 * 1024):
        self.app, self.max_bytes, self.drain_cap = app, max_bytes, drain_cap

    def _message(self) -> str:
        return f"request body exceeds the limit of {self.max_bytes} bytes"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._drain(receive)
            return await _send_json(send, 413, {"error": self._message()})
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise RequestTooLarge(self._message())
            return message

        await self.app(scope, limited_receive, send)

    async def _drain(self, receive) -> None:
        """Reads and discards the body so that the client gets to read our answer."""
        drained, more = 0, True
        while more and drained <= self.drain_cap:
            message = await receive()
            drained += len(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"


class RequestHygiene:
    """ASGI middleware for what KServe's routes get wrong for our users:

    - ``/v2/repository/...`` (load / unload / index) is refused: the served model is fixed
      at start-up, and an unauthenticated unload would leave a "ready" server that
      answers nothing until restarted;
    - a v2 inference body sent with a form or missing content type (``curl -d``) is read
      as JSON, as the documented examples promise (binary-extension requests, which carry
      ``Inference-Header-Content-Length``, are left alone).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith("/v2/repository"):
            message = "model repository control is disabled: the served model is fixed at start-up"
            return await _send_json(send, 404, {"error": message})
        if scope.get("method") == "POST" and path.startswith("/v2/models/"):
            headers = dict(scope["headers"])
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            binary = b"inference-header-content-length" in headers
            if not binary and kind in (b"", b"application/x-www-form-urlencoded", b"text/plain"):
                kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = dict(scope, headers=[*kept, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)


async def _too_large(_, error: RequestTooLarge):
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(status_code=413, content={"error": error.detail})


async def _invalid_request(_, error):
    """FastAPI's body validation (v2 JSON schema, malformed JSON): 400, not 422."""
    from fastapi.responses import ORJSONResponse

    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()
    )
    return ORJSONResponse(status_code=400, content={"error": f"invalid request: {problems}"})


async def _http_error(_, error):
    """Starlette's own 404 / 405 / ... answers: {"error": ...} like every other answer."""
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(
        status_code=error.status_code, content={"error": str(error.detail)}, headers=error.headers
    )


async def _internal_error(_, error: Exception):
    """A bug of ours: a short message (never the request echoed back), and the connection
    is closed explicitly so that a keep-alive client reconnects instead of failing."""
    from fastapi.responses import ORJSONResponse

    return ORJSONResponse(
        status_code=500,
        content={"error": f"internal error ({type(error).__name__})"},
        headers={"connection": "close"},
    )


def build_app(config: ServeConfig):
    """The FastAPI application serving ``config.model_path`` as ``config.name``."""
    return build_servers(config)[0]


def build_servers(config: ServeConfig):
    """(FastAPI app, data plane, model-repository extension): one model behind both REST
    and gRPC."""
    from fastapi.exceptions import RequestValidationError
    from kserve.model_repository import ModelRepository
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from siameseim_tf.serving.binary import StrictDataPlane
    from siameseim_tf.serving.server import EncoderModel
    from siameseim_tf.serving.tfserving_rest import TFServingRoutes

    repository = ModelRepository()
    model = EncoderModel(config)
    repository.update(model)
    data_plane = StrictDataPlane(model_registry=repository)
    extension = ModelRepositoryExtension(model_registry=repository)
    rest = RESTServer("kserve.model_server:app", data_plane, extension, config.port)
    rest.create_application()  # registers v1 / v2 routes + kserve's error handlers on its app
    app = kserve.model_server.app
    app.add_exception_handler(RequestTooLarge, _too_large)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(RequestHygiene)
    shapes = {o["name"]: o["shape"] for o in model.get_output_types()}
    app.add_middleware(TFServingRoutes, name=config.name, output_shapes=lambda: shapes)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    return app, data_plane, extension


def grpc_server(config: ServeConfig, data_plane, extension):
    """KServe's v2 ``GRPCInferenceService`` on ``config.host:config.grpc_port`` (KServe's
    own server binds every interface), and with ``config.tfserving_grpc_port`` TF
    Serving's ``PredictionService`` / ``ModelService``; messages limited like REST bodies."""
    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer

    limit = config.limits.max_body_bytes
    server = aio.server(
        interceptors=(ExceptionToStatusInterceptor(),),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)],
    )
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(data_plane, extension), server
    )
    if config.tfserving_grpc_port:
        from siameseim_tf.serving import tfserving_grpc

        model = data_plane._model_registry.get_model(config.name)
        shapes = {o["name"]: o["shape"] for o in model.get_output_types()}
        tfserving_grpc.add_to_server(server, model, shapes)
    host = f"[{config.host}]" if ":" in config.host else config.host
    # Every service answers on every port: v2 on grpc_port, TF Serving's on its own.
    for port in filter(None, (config.grpc_port, config.tfserving_grpc_port)):
        if server.add_insecure_port(f"{host}:{port}") == 0:
            raise OSError(f"cannot listen on {config.host}:{port} (gRPC)")
    return server


def run(config: ServeConfig) -> None:
    """Serves REST (and gRPC with ``config.grpc_port``) until interrupted (SIGINT / SIGTERM)."""
    import asyncio

    import uvicorn
    from kserve.logging import configure_logging

    configure_logging()
    app, data_plane, extension = build_servers(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=config.host, port=config.port, log_config=None, timeout_keep_alive=65
        )
    )

    async def serve() -> None:
        wanted = config.grpc_port or config.tfserving_grpc_port
        grpc = grpc_server(config, data_plane, extension) if wanted else None
        if grpc is not None:
            await grpc.start()
        try:
            await server.serve()
        finally:
            if grpc is not None:
                await grpc.stop(grace=5)

    asyncio.run(serve())
