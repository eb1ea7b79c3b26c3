"""Open Inference Protocol v2 over gRPC: the front (server), the step client (backend), conversion."""
