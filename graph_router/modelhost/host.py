"""The model host: an aiohttp server speaking KServe v1 and Open Inference Protocol v2."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .model import InvalidInput, Model
from .received import Protocol, Received, v2_answer
from .serverless import Lifecycle, lifecycle_middleware

log = logging.getLogger("graph_router.modelhost")
_NAME = r"{name:[^/:]+}"


class ModelNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"Model with name {name} does not exist.")


class ModelNotReady(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"Model with name {name} is not ready.")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """KServe's error shapes: ``{"error": "..."}`` with 400, 404, 503 or 500."""
    try:
        return await handler(request)
    except InvalidInput as exc:
        return _json({"error": str(exc)}, 400)
    except ModelNotFound as exc:
        return _json({"error": str(exc)}, 404)
    except ModelNotReady as exc:
        return _json({"error": str(exc)}, 503)
    except web.HTTPException as exc:
        return _json({"error": exc.reason}, exc.status)
    except Exception as exc:  # a model bug must reach the caller as a 500, never a traceback
        log.exception("model failed on %s", request.path)
        return _json({"error": f"{type(exc).__name__}: {exc}"}, 500)


class ModelHost:
    """Serves models over HTTP on one port; an async context manager.

    ``url_for(name)`` gives the URL a graph's ``serviceName`` override needs;
    ``requests`` lists every inference request received, in order. ``scale_to_zero`` (seconds idle)
    and ``cold_start`` (seconds) emulate Knative's serverless lifecycle per model
    (:mod:`.serverless`); ``lifecycles`` holds each model's state.
    """

    def __init__(self, models: Iterable[Model] = (), *, host: str = "127.0.0.1", port: int = 0,
                 scale_to_zero: float | None = None, cold_start: float = 0.0,
                 grpc_port: int | None = None) -> None:
        if scale_to_zero is not None and not (scale_to_zero > 0 and cold_start >= 0):
            raise ValueError(f"scale_to_zero must be > 0 and cold_start >= 0, got {scale_to_zero!r}, {cold_start!r}")
        self.scale_to_zero = scale_to_zero
        self.cold_start = cold_start
        self.lifecycles: dict[str, Lifecycle] = {}
        self.models: dict[str, Model] = {}
        for model in models:
            self.add(model)
        self.host = host
        self._port = port
        self.requests: list[Received] = []
        #: ``(method, path)`` of every request received, readiness and metadata included, in order
        self.seen: list[tuple[str, str]] = []
        self.app = self._make_app()
        self._runner: web.AppRunner | None = None
        #: The Open Inference Protocol over gRPC too, when a port is given (0: any free one); needs the grpc extra.
        self._grpc_port = grpc_port
        self._grpc: Any = None

    def add(self, model: Model) -> None:
        if model.served_name in self.models:
            raise ValueError(f"two models named {model.served_name!r}")
        self.models[model.served_name] = model
        if self.scale_to_zero is not None:
            self.lifecycles[model.served_name] = Lifecycle(model.served_name, idle=self.scale_to_zero,
                                                           cold_start=self.cold_start)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner
        if self._grpc_port is not None:
            from .grpc_endpoint import start_grpc_endpoint

            try:
                self._grpc = await start_grpc_endpoint(self, self.host, self._grpc_port)
            except BaseException:
                await self.stop()
                raise
            self._grpc_port = self._grpc.port

    async def stop(self) -> None:
        for lc in self.lifecycles.values():
            lc.close()
        if self._grpc is not None:
            endpoint, self._grpc = self._grpc, None
            await endpoint.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> ModelHost:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known after ``start``; port 0 asks the OS for a free one)."""
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def url_for(self, name: str, protocol: Protocol | None = None) -> str:
        """The inference URL of a model; the protocol defaults to v1 unless the model is v2-only."""
        model = self.models.get(name)
        if model is None:
            raise KeyError(f"no model named {name!r}")
        if protocol is None:
            protocol = "v2" if model.supports_v2 and not model.supports_v1 else "v1"
        if protocol == "v1":
            return f"{self.base_url}/v1/models/{name}:predict"
        return f"{self.base_url}/v2/models/{name}/infer"

    @property
    def grpc_port(self) -> int | None:
        """The gRPC port (known after ``start``), or None without a gRPC endpoint."""
        return self._grpc_port

    def grpc_url_for(self, name: str) -> str:
        """The ``grpc://`` URL a graph's step uses to call a v2 model over gRPC."""
        model = self.models.get(name)
        if model is None or not model.supports_v2:
            raise KeyError(f"no v2 model named {name!r}")
        if self._grpc_port is None:
            raise KeyError("this model host has no gRPC endpoint (grpc_port)")
        return f"grpc://{self.host}:{self._grpc_port}/{name}"

    def service_urls(self) -> dict[str, str]:
        """Every model's inference URL by name (the router's ``services`` overrides)."""
        return {name: self.url_for(name) for name in self.models}

    def received(self, model: str) -> list[Any]:
        """The JSON bodies one model received, in order."""
        return [r.json() for r in self.requests if r.model == model]

    # --- HTTP --------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        middlewares = [self._record, _errors]
        if self.scale_to_zero is not None:
            middlewares.insert(1, lifecycle_middleware(self.lifecycles))
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/serverless", self._serverless)
        app.router.add_get("/v1/models", self._v1_list)
        app.router.add_get(f"/v1/models/{_NAME}", self._v1_status)
        app.router.add_post(f"/v1/models/{_NAME}:predict", self._v1_predict)
        app.router.add_get("/v2", self._v2_server)
        app.router.add_get("/v2/health/live", self._v2_live)
        app.router.add_get("/v2/health/ready", self._v2_ready)
        app.router.add_get(f"/v2/models/{_NAME}", self._v2_metadata)
        app.router.add_get(f"/v2/models/{_NAME}/ready", self._v2_model_ready)
        app.router.add_post(f"/v2/models/{_NAME}/infer", self._v2_infer)
        return app

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        self.seen.append((request.method, request.path))
        return await handler(request)

    def _model(self, request: web.Request, *, ready: bool = True) -> Model:
        name = request.match_info["name"]
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(name)
        if ready and not model.ready:
            raise ModelNotReady(name)
        return model

    async def _body(self, request: web.Request, model: Model, protocol: Protocol) -> Any:
        raw = await request.read()
        self.requests.append(Received(model.served_name, protocol, CIMultiDictProxy(CIMultiDict(request.headers)), raw))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"Unrecognized request format: {exc}") from exc

    async def _v1_list(self, request: web.Request) -> web.Response:
        return _json({"models": list(self.models)})

    async def _v1_status(self, request: web.Request) -> web.Response:
        model = self._model(request, ready=False)
        body: dict[str, Any] = {"name": model.served_name, "ready": model.ready}
        lc = self.lifecycles.get(model.served_name)
        if lc is not None:
            body["serverless"] = lc.describe()
        return _json(body)

    async def _serverless(self, request: web.Request) -> web.Response:
        """Every model's lifecycle state, without waking any (as ``kubectl get ksvc`` would)."""
        return _json({name: lc.describe() for name, lc in self.lifecycles.items()})

    async def _v1_predict(self, request: web.Request) -> web.Response:
        model = self._model(request)
        body = await self._body(request, model, "v1")
        if not isinstance(body, dict):
            raise InvalidInput('Expected "instances" to be a list')
        instances = body.get("instances")
        if instances is None and model.accepts_predictions:
            instances = body.get("predictions")
        if not isinstance(instances, list):
            raise InvalidInput('Expected "instances" to be a list')
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput('Expected "parameters" to be an object')
        predictions = model.predict(instances, parameters)
        return _json(model.respond(predictions, body))

    async def _v2_server(self, request: web.Request) -> web.Response:
        return _json({"name": "graph-router-modelhost", "version": "1", "extensions": []})

    async def _v2_live(self, request: web.Request) -> web.Response:
        return _json({"live": True})

    async def _v2_ready(self, request: web.Request) -> web.Response:
        ready = all(m.ready for m in self.models.values())
        return _json({"ready": ready}, 200 if ready else 503)

    async def _v2_metadata(self, request: web.Request) -> web.Response:
        return _json(self._model(request, ready=False).metadata())

    async def _v2_model_ready(self, request: web.Request) -> web.Response:
        model = self._model(request, ready=False)
        return _json({"name": model.served_name, "ready": model.ready}, 200 if model.ready else 503)

    async def _v2_infer(self, request: web.Request) -> web.Response:
        model = self._model(request)
        body = await self._body(request, model, "v2")
        return _json(v2_answer(model, body))
