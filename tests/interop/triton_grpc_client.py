"""Calls a server with the real ``tritonclient.grpc`` (raw contents, as Triton's client always sends):
``python -m tests.interop.triton_grpc_client TARGET MODEL [TOKEN] < inputs.json``; prints the answer as JSON.

A process of its own: tritonclient and kserve each register the ``inference.*`` protobuf messages in
protobuf's default pool from different files, so they cannot be imported into one process.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import orjson
import tritonclient.grpc as tc  # type: ignore[import-untyped]
from tritonclient.utils import InferenceServerException, triton_to_np_dtype  # type: ignore[import-untyped]


def to_numpy(tensor: dict[str, Any]) -> Any:
    if tensor["datatype"] == "BYTES":
        data = [v.encode() for v in tensor["data"]]
        return np.array(data, dtype=np.object_).reshape(tensor["shape"])
    return np.array(tensor["data"], dtype=triton_to_np_dtype(tensor["datatype"])).reshape(tensor["shape"])


def from_numpy(array: Any, datatype: str) -> list[Any]:
    flat = array.reshape(-1).tolist()
    return [v.decode() for v in flat] if datatype == "BYTES" else flat


def main(argv: list[str]) -> int:
    target, model = argv[1], argv[2]
    headers = {"authorization": f"Bearer {argv[3]}"} if len(argv) > 3 else None
    tensors = orjson.loads(sys.stdin.buffer.read())
    inputs = []
    for t in tensors:
        inp = tc.InferInput(t["name"], t["shape"], t["datatype"])
        inp.set_data_from_numpy(to_numpy(t))
        inputs.append(inp)
    client = tc.InferenceServerClient(target)
    try:
        result = client.infer(model, inputs, request_id="triton-1", headers=headers, client_timeout=20)
    except InferenceServerException as exc:
        print(orjson.dumps({"error": {"status": exc.status(), "message": exc.message()}}).decode())
        return 0
    finally:
        client.close()
    resp = result.get_response()
    outputs = {o.name: {"datatype": o.datatype, "shape": list(o.shape),
                        "data": from_numpy(result.as_numpy(o.name), o.datatype)} for o in resp.outputs}
    print(orjson.dumps({"id": resp.id, "model_name": resp.model_name, "outputs": outputs,
                        "raw": len(resp.raw_output_contents)}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
