"""The standard's protobuf classes, generated from proto/tessera/v1 at run
time with grpcio-tools into a directory of the caller's (no generated code is
kept or committed)."""

import importlib
import importlib.resources
import os
import sys
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO_FILES = [
    "tessera/v1/badge.proto",
    "tessera/v1/trust.proto",
    "tessera/v1/privacy.proto",
    "tessera/v1/node.proto",
    "tessera/v1/gateway.proto",
]


class ProtoError(Exception):
    """The .proto files are missing or do not compile."""


def load(proto_root, out_dir):
    """Compiles the standard into out_dir and imports it: a namespace with
    badge, trust, gateway (messages) and gateway_grpc (stubs)."""
    from grpc_tools import protoc

    missing = [f for f in PROTO_FILES if not os.path.isfile(os.path.join(proto_root, f))]
    if missing:
        raise ProtoError(f"{', '.join(missing)} not found under {proto_root} (see --proto-root)")
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *PROTO_FILES,
        ]
    )
    if status != 0:
        raise ProtoError(f"protoc failed on the .proto files under {proto_root}")
    sys.path.insert(0, out_dir)
    return SimpleNamespace(
        badge=importlib.import_module("tessera.v1.badge_pb2"),
        trust=importlib.import_module("tessera.v1.trust_pb2"),
        gateway=importlib.import_module("tessera.v1.gateway_pb2"),
        gateway_grpc=importlib.import_module("tessera.v1.gateway_pb2_grpc"),
    )
