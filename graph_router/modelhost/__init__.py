"""A small model host for examples and integration tests: real HTTP, KServe v1 and v2.

It serves deterministic example models (iris classifiers, animal detector and breeds, A/B
sentiment models, v2 scaler/classifier; see :data:`EXAMPLE_MODELS`) and any :class:`Model`
you write::

    from graph_router.modelhost import Model, ModelHost

    class Doubler(Model):
        name = "doubler"

        def predict(self, instances, parameters):
            return [2 * x for x in instances]

    async with ModelHost([Doubler()], port=0) as host:
        url = host.url_for("doubler", protocol="v1")  # http://127.0.0.1:<port>/v1/models/doubler:predict
        # POST {"instances": [1, 2]} -> {"predictions": [2, 4]}; host.received("doubler") lists the bodies

Endpoints: ``GET /v1/models/<m>``, ``POST /v1/models/<m>:predict``, ``GET /v2/health/live``,
``GET /v2/health/ready``, ``GET /v2/models/<m>`` (metadata), ``GET /v2/models/<m>/ready``,
``POST /v2/models/<m>/infer``. Errors are KServe's: 400 ``{"error": reason}`` for bad input
(raise :class:`InvalidInput`), 404 ``{"error": "Model with name x does not exist."}``, 500 for
a model that raises anything else. From the shell: ``graph-router models serve``.
"""

from __future__ import annotations

from .catalog import EXAMPLE_MODELS, example_models
from .host import ModelHost
from .model import InferRequest, InvalidInput, Model, Tensor, TensorSpec
from .received import Received

__all__ = [
    "EXAMPLE_MODELS",
    "InferRequest",
    "InvalidInput",
    "Model",
    "ModelHost",
    "Received",
    "Tensor",
    "TensorSpec",
    "example_models",
]
