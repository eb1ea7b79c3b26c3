"""``graph-router models serve|list``: the example model host from the shell.

``graph_router.cli`` calls :func:`register`; each subcommand sets ``func(args) -> int`` (exit code).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import inspect
import logging
import os
import signal
import sys
from typing import TypeAlias

from .catalog import EXAMPLE_MODELS, example_models
from .host import ModelHost

# A string: argparse's class is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers) -> None:
    """Add ``models serve`` and ``models list`` to the ``graph-router`` parser."""
    models = subparsers.add_parser("models", help="serve the example models (KServe v1 and v2)")
    add_commands(models.add_subparsers(dest="models_command", required=True, metavar="COMMAND"))


def main(argv: list[str] | None = None) -> int:
    """``python -m graph_router.modelhost serve|list`` (what the quick start runs)."""
    parser = argparse.ArgumentParser(prog="python -m graph_router.modelhost", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def add_commands(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="serve example models on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9000)
    serve.add_argument("--grpc-port", type=int, metavar="PORT",
                       help="also serve the v2 models over gRPC (Open Inference Protocol) on PORT; needs the "
                            "grpc extra: pip install 'graph-router[grpc]'")
    serve.add_argument(
        "--models", default="all", help="comma-separated model names, or 'all' (default)", metavar="NAMES"
    )
    serve.add_argument("--scale-to-zero", type=float, metavar="IDLE_S",
                       help="emulate Knative: a model idle this long scales to zero (models start at zero)")
    serve.add_argument("--cold-start", type=float, default=0.0, metavar="S",
                       help="with --scale-to-zero: a model at zero holds requests this long while it starts")
    serve.set_defaults(func=serve_command)
    listing = sub.add_parser("list", help="list the example models and what they do")
    listing.set_defaults(func=list_command)


def parse_names(value: str) -> list[str] | None:
    """``all`` -> None (every model); otherwise the comma-separated names, checked."""
    if value.strip() == "all":
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXAMPLE_MODELS]
    if unknown or not names:
        raise ValueError(f"unknown model(s): {', '.join(unknown) or '(none given)'}")
    return names


def list_command(args: argparse.Namespace) -> int:
    lines = []
    for name, factory in EXAMPLE_MODELS.items():
        model = factory()
        protocols = "/".join(p for p, ok in (("v1", model.supports_v1), ("v2", model.supports_v2)) if ok)
        doc = (inspect.getdoc(type(model)) or "").split("\n\n")[0].replace("\n", " ").replace("``", "")
        lines.append(f"{name:<20} {protocols:<6} {doc}\n")
    # `... | head` closes the pipe early: not an error worth a traceback.
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    return 0


def serve_command(args: argparse.Namespace) -> int:
    try:
        names = parse_names(args.models)
    except ValueError as exc:
        print(f"graph-router models serve: {exc}; see 'graph-router models list'", file=sys.stderr)
        return 2
    stz, cold = args.scale_to_zero, args.cold_start
    if (stz is not None and not stz > 0) or not cold >= 0 or (cold and stz is None):
        print("graph-router models serve: --scale-to-zero IDLE_S needs IDLE_S > 0, and --cold-start S needs "
              "S >= 0 and --scale-to-zero", file=sys.stderr)
        return 2
    if stz is not None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        host = ModelHost(example_models(names), host=args.host, port=args.port, scale_to_zero=stz, cold_start=cold,
                         grpc_port=args.grpc_port)
        asyncio.run(serve_until_signalled(host))
    except ImportError as exc:
        print(f"graph-router models serve: --grpc-port needs the grpc extra: pip install 'graph-router[grpc]' "
              f"({exc})", file=sys.stderr)
        return 2
    except OSError as exc:
        ports = f"{args.port}" if args.grpc_port is None else f"{args.port} (gRPC {args.grpc_port})"
        hint = " (another process has it: pick another --port)" if exc.errno == errno.EADDRINUSE else ""
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"graph-router models serve: cannot listen on {args.host}:{ports}: {why}{hint}", file=sys.stderr)
        return 2
    return 0


async def serve_until_signalled(host: ModelHost) -> None:
    """Serve until SIGINT or SIGTERM, printing each model's URL once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with host:
            print(f"model host listening on {host.base_url}", flush=True)
            for name in host.models:
                print(f"  {name:<20} {host.url_for(name)}", flush=True)
            if host.grpc_port is not None:
                print(f"gRPC (Open Inference Protocol) on {host.host}:{host.grpc_port}", flush=True)
                for name, model in host.models.items():
                    if model.supports_v2:
                        print(f"  {name:<20} {host.grpc_url_for(name)}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
    print("model host stopped", flush=True)
