"""`tinylm serve CKPT`: an OpenAI-compatible HTTP API and a web playground for one checkpoint.

    tinylm serve runs/shakespeare/best                 # http://127.0.0.1:8000/ (playground)
    curl -s localhost:8000/v1/completions -H 'Content-Type: application/json' \\
         -d '{"prompt": "ROMEO:", "max_tokens": 50, "temperature": 0.8}'

Requests that arrive together are decoded together (continuous batching); see docs/serving.md.
"""

from __future__ import annotations

import argparse
import os

from tinylm.errors import TinyLMError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve a checkpoint over HTTP (OpenAI API + playground)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model-name", default=None, help="the model id clients use (default: the folder name)")
    p.add_argument("--api-key", default=os.environ.get("TINYLM_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 (default: $TINYLM_API_KEY, else open)")
    p.add_argument("--max-batch", type=int, default=64, help="sequences decoded at once (default 64)")
    p.add_argument("--max-waiting", type=int, default=256, help="queued requests before 503 (default 256)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body limit (default 1 MiB)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise TinyLMError(f"--port must be in 1..65535, got {args.port}")
    for flag in ("max_batch", "max_waiting", "max_body_bytes"):
        if getattr(args, flag) < 1:
            raise TinyLMError(f"--{flag.replace('_', '-')} must be at least 1")
    try:
        import uvicorn
    except ImportError:
        raise TinyLMError("serving needs the serve extra: pip install 'tinylm[serve]'") from None
    import torch

    import tinylm
    from tinylm.serve import create_app

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = tinylm.load(args.checkpoint)
    app = create_app(lm, model_name=args.model_name, api_key=args.api_key, max_rows=args.max_batch,
                     max_waiting=args.max_waiting, max_body_bytes=args.max_body_bytes)
    _check_port(args.host, args.port)
    print(f"tinylm: serving {args.checkpoint} at http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _check_port(host: str, port: int) -> None:
    """Fail with one line before loading anything into uvicorn, which would log and exit."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise TinyLMError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
