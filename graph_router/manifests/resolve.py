"""How KServe's InferenceGraph controller turns a ``serviceName`` into a URL (``GetPredictorEndpoint``).

URL = the InferenceService's ``status.address.url`` (cluster-local in Serverless mode:
``http://<name>.<namespace>.svc.cluster.local``) + ``PredictPath(modelName, protocol)``, where
- modelName is ``MLSERVER_MODEL_NAME`` from the model's env, else ``--model_name`` from its args,
  else the InferenceService's name (``GetModelName``);
- protocol is the model's ``protocolVersion`` (default v1), except that with an explicit ``runtime``
  it is the first of v1/v2 in that runtime's ``protocolVersions``.
"""

from __future__ import annotations

from .deploy import Backend, InferenceServiceBackend

#: ``protocolVersions`` of KServe's built-in ClusterServingRuntimes (kserve ``config/runtimes``).
RUNTIME_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "kserve-sklearnserver": ("v1", "v2"),
    "kserve-xgbserver": ("v1", "v2"),
    "kserve-lgbserver": ("v1", "v2"),
    "kserve-paddleserver": ("v1", "v2"),
    "kserve-pmmlserver": ("v1", "v2"),
    "kserve-huggingfaceserver": ("v1", "v2"),
    "kserve-torchserve": ("v1", "v2", "grpc-v2"),
    "kserve-tensorflow-serving": ("v1", "grpc-v1"),
    "kserve-mlserver": ("v2",),
    "kserve-tritonserver": ("v2", "grpc-v2"),
}


def predict_path(model: str, protocol: str) -> str:
    """KServe ``constants.PredictPath``."""
    return f"/v2/models/{model}/infer" if protocol == "v2" else f"/v1/models/{model}:predict"


def isvc_model_name(name: str, b: InferenceServiceBackend) -> str:
    if b.env and "MLSERVER_MODEL_NAME" in b.env:
        return b.env["MLSERVER_MODEL_NAME"]
    args = list(b.args or ())
    found = ""
    for i, arg in enumerate(args):
        if arg.startswith("--model_name"):
            key, _, value = arg.partition("=")
            if key == "--model_name" and value:
                found = value
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                found = args[i + 1]
    return found or name


def isvc_protocol(b: InferenceServiceBackend) -> str:
    """The protocol KServe's controller uses for the URL (a built-in runtime's list wins)."""
    if b.protocol == "grpc-v2":
        return b.protocol
    versions = RUNTIME_PROTOCOLS.get(b.runtime or "")
    if versions is None:
        return b.protocol
    return next(v for v in versions if v in ("v1", "v2"))


def grpc_url(name: str, namespace: str, model: str) -> str:
    """A gRPC backend: the same cluster-local host, port 80 (Knative serves h2c there), the model in the path."""
    return f"grpc://{name}.{namespace}.svc.cluster.local:80/{model}"


def backend_url(name: str, b: Backend, namespace: str) -> str:
    """The URL for ``serviceName: name``; a Knative Service uses ``path`` or the same predict path."""
    if b.protocol == "grpc-v2":
        model = isvc_model_name(name, b) if isinstance(b, InferenceServiceBackend) else b.model_name or name
        return grpc_url(name, namespace, model)
    host = f"http://{name}.{namespace}.svc.cluster.local"
    if isinstance(b, InferenceServiceBackend):
        return host + predict_path(isvc_model_name(name, b), isvc_protocol(b))
    return host + (b.path or predict_path(b.model_name or name, b.protocol))
