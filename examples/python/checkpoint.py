#!/usr/bin/env python3
"""A tessera checkpoint in Python: verify a badge through the national gateway.

It uses nothing of tessera but the standard: the .proto files in
proto/tessera/v1/, compiled at run time with grpcio-tools into a temporary
directory, a grpcio stub, and mutual TLS 1.3 with the checkpoint's own
Ed25519 certificate and key, trusting only the national root. It calls
Gateway.Verify and prints the verdict.

TLS (see README.md, "Ed25519 and grpcio"): the grpcio wheels on PyPI carry
BoringSSL, whose TLS client does not offer Ed25519 signatures, so they cannot
talk to a tessera gateway. By default (--tls python) this client therefore
makes the TLS connection with Python's own ssl module (OpenSSL) and runs
grpcio over it through a private Unix socket. With a grpcio built against
OpenSSL, --tls grpcio lets grpcio make the TLS connection itself.

Exit status, as for `tessera verify` (docs/OPERATIONS.md section 6):
  0        VALID (the only status on which a gate may open)
  10 + n   any other outcome, n its wire number in badge.proto
           (12 REVOKED, 15 BAD_SIGNATURE, 18 MALFORMED, 19 STATUS_UNAVAILABLE, ...)
  10       an outcome this client does not know
  1        no check was made (files unreadable, gateway unreachable or refused us)
  2        usage error
"""

import argparse
import asyncio
import base64
import datetime
import importlib
import importlib.resources
import os
import ssl
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO_FILES = [
    "tessera/v1/badge.proto",
    "tessera/v1/trust.proto",
    "tessera/v1/privacy.proto",
    "tessera/v1/node.proto",
    "tessera/v1/gateway.proto",
]


class NoCheck(Exception):
    """No verdict could be obtained; exit status 1."""


# --- command line -----------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Verify a tessera badge through the national gateway over mutual TLS.",
        epilog="Example: %(prog)s --gateway 127.0.0.1:7000 "
        "--bundle federation/authority/verifiers/420000-wuhan-railway-station 'TB1:...'",
    )
    p.add_argument("--gateway", required=True, help="the gateway, HOST:PORT")
    p.add_argument(
        "--bundle",
        help="the checkpoint's bundle directory (verifier.crt, verifier.key, root.crt)",
    )
    p.add_argument("--cert", help="the checkpoint's certificate (PEM); default BUNDLE/verifier.crt")
    p.add_argument("--key", help="the checkpoint's private key (PEM); default BUNDLE/verifier.key")
    p.add_argument("--root", help="the national root certificate (PEM); default BUNDLE/root.crt")
    p.add_argument(
        "--server-name",
        help="the name or IP address the gateway's certificate must carry, when it is not HOST",
    )
    p.add_argument(
        "--tls",
        choices=["python", "grpcio"],
        default="python",
        help="who makes the TLS connection: Python's ssl module (default; works with the "
        "grpcio wheels from PyPI) or grpcio itself (needs a grpcio built against OpenSSL)",
    )
    p.add_argument(
        "--proto-root",
        default=DEFAULT_PROTO_ROOT,
        help="the directory holding tessera/v1/*.proto (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    badge = p.add_mutually_exclusive_group(required=True)
    badge.add_argument("text", nargs="?", help="the badge's QR text, TB1:...")
    badge.add_argument("--text-file", help="a file holding the QR text (e.g. a demo's badge.txt)")
    badge.add_argument("--envelope", help="a file holding the envelope bytes (an encoded SignedBadge)")
    args = p.parse_args(argv)
    for name, file in (("cert", "verifier.crt"), ("key", "verifier.key"), ("root", "root.crt")):
        if getattr(args, name) is None:
            if args.bundle is None:
                p.error(f"--{name} or --bundle is required")
            setattr(args, name, os.path.join(args.bundle, file))
    host, sep, port = args.gateway.rpartition(":")
    if not sep or not host or not port.isdigit():
        p.error(f"--gateway {args.gateway!r} is not HOST:PORT")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise NoCheck(f"cannot read the {what} {path}: {e.strerror}") from e


def read_pem(path, what, label):
    data = read(path, what)
    if f"-----BEGIN {label}-----".encode() not in data:
        raise NoCheck(f"the {what} {path} holds no PEM {label}")
    return data


# --- keys -------------------------------------------------------------------

_ED25519_ALGORITHM = bytes.fromhex("300506032b6570")  # SEQUENCE { OID 1.3.101.112 }
_PKCS8_V1_PREFIX = bytes.fromhex("302e020100") + _ED25519_ALGORITHM + bytes.fromhex("04220420")


def _der(buf, i):
    """Reads one DER element at i: (tag, contents, index after it)."""
    if i + 2 > len(buf):
        raise ValueError("truncated")
    tag, n, i = buf[i], buf[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        n, i = int.from_bytes(buf[i : i + k], "big"), i + k
    if i + n > len(buf):
        raise ValueError("truncated")
    return tag, buf[i : i + n], i + n


def pkcs8_v1(pem):
    """Returns an Ed25519 private key as PKCS#8 version 1 (RFC 8410) PEM.

    tessera writes its keys as PKCS#8 version 2 (RFC 5958: the public key is
    included). Neither BoringSSL (grpcio) nor OpenSSL 3.0 (Debian 12's, which
    Python's ssl module uses) reads that form for Ed25519. The seed is all a
    TLS library needs, so it is re-wrapped as version 1. Any other key is
    returned unchanged.
    """
    text = pem.decode("ascii", "replace")
    begin, end = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"
    if begin not in text or end not in text:
        return pem
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        tag, info, _ = _der(der, 0)
        if tag != 0x30:
            return pem
        tag, version, i = _der(info, 0)
        tag2, _, i2 = _der(info, i)
        tag3, private, _ = _der(info, i2)
        if (tag, tag2, tag3) != (0x02, 0x30, 0x04) or info[i:i2] != _ED25519_ALGORITHM:
            return pem
        tag, seed, rest = _der(private, 0)
        if tag != 0x04 or len(seed) != 32 or rest != len(private):
            return pem
    except ValueError:
        return pem
    if version == b"\x00" and der == _PKCS8_V1_PREFIX + seed:
        return pem
    v1 = base64.b64encode(_PKCS8_V1_PREFIX + seed).decode()
    return f"{begin}\n{v1}\n{end}\n".encode()


# --- the standard's stubs -----------------------------------------------------


def compile_protos(proto_root, out_dir):
    """Generates the Python modules of the standard into out_dir and imports them."""
    from grpc_tools import protoc

    missing = [f for f in PROTO_FILES if not os.path.isfile(os.path.join(proto_root, f))]
    if missing:
        raise NoCheck(f"{', '.join(missing)} not found under {proto_root} (see --proto-root)")
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
        raise NoCheck(f"protoc failed on the .proto files under {proto_root}")
    sys.path.insert(0, out_dir)
    return (
        importlib.import_module("tessera.v1.badge_pb2"),
        importlib.import_module("tessera.v1.gateway_pb2"),
        importlib.import_module("tessera.v1.gateway_pb2_grpc"),
    )


# --- TLS by Python's ssl module -----------------------------------------------


class TlsBridge:
    """Carries grpcio's HTTP/2 from a private Unix socket to the gateway over
    mutual TLS made by Python's ssl module (OpenSSL), which does Ed25519.

    The socket lives in a directory only this user can enter and exists only
    while the check runs. Each connection grpcio opens gets its own TLS
    connection to the gateway; failures are kept in `errors` for the report.
    """

    def __init__(self, path, host, port, context, server_hostname, timeout):
        self.path = path
        self.host, self.port = host, port
        self.context, self.server_hostname = context, server_hostname
        self.timeout = timeout
        self.errors = []
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-bridge", daemon=True)

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise NoCheck(f"could not listen on {self.path}: {self.errors}")
        return self

    def __exit__(self, *exc):
        self._closing = True
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = None
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_unix_server(self._handle, path=self.path)
            )
        except OSError as e:
            self.errors.append(str(e))
        self._ready.set()
        if self._server is not None:
            self._loop.run_forever()

    async def _shutdown(self):
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.context,
                    server_hostname=self.server_hostname,
                ),
                self.timeout,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            self.errors.append(f"TLS connection to {self.host}:{self.port} failed: {e or 'timeout'}")
            writer.close()
            return
        if up_writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            self.errors.append("the gateway did not agree to HTTP/2 (ALPN h2)")
        await asyncio.gather(
            self._pump(reader, up_writer, "to"),
            self._pump(up_reader, writer, "from"),
            return_exceptions=True,
        )

    async def _pump(self, source, sink, direction):
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, ssl.SSLError) as e:
            if not self._closing:
                self.errors.append(f"TLS connection {direction} the gateway broke: {e}")
        finally:
            sink.close()


def python_tls_context(args, private_dir):
    """A TLS 1.3 client context: our certificate and key, only the national root."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2"])
    try:
        context.load_verify_locations(
            cadata=read_pem(args.root, "root certificate", "CERTIFICATE").decode("ascii")
        )
    except (ssl.SSLError, ValueError) as e:
        raise NoCheck(f"the root certificate {args.root} does not load: {e}") from e
    read_pem(args.cert, "certificate", "CERTIFICATE")
    key_path = os.path.join(private_dir, "key.pem")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pkcs8_v1(read_pem(args.key, "private key", "PRIVATE KEY")))
    try:
        context.load_cert_chain(args.cert, key_path)
    except ssl.SSLError as e:
        raise NoCheck(f"the certificate {args.cert} and key {args.key} do not load: {e}") from e
    finally:
        os.unlink(key_path)
    return context


# --- the check ----------------------------------------------------------------


def build_request(args, gateway_pb2):
    if args.envelope is not None:
        return gateway_pb2.VerifyRequest(envelope=read(args.envelope, "badge envelope"))
    text = args.text
    if args.text_file is not None:
        text = read(args.text_file, "badge text").decode("utf-8", "replace")
    return gateway_pb2.VerifyRequest(qr_text=text.strip())


def call_verify(channel, request, args, gateway_pb2_grpc, tls_errors):
    import grpc

    try:
        return gateway_pb2_grpc.GatewayStub(channel).Verify(request, timeout=args.timeout)
    except grpc.RpcError as e:
        reason = f"{e.code().name}: {e.details()}"
        if tls_errors:
            reason = f"{tls_errors[-1]} ({reason})"
        elif args.tls == "grpcio" and "handshake" in (e.details() or "").lower():
            reason += (
                "; if this grpcio carries BoringSSL (the wheels on PyPI do), its TLS offers"
                " no Ed25519 signatures: use --tls python"
            )
        raise NoCheck(f"the gateway at {args.gateway} gave no verdict: {reason}") from e


def verify(args, work_dir, gateway_pb2, gateway_pb2_grpc):
    import grpc

    request = build_request(args, gateway_pb2)
    server_name = args.server_name or args.host
    if args.tls == "grpcio":
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_pem(args.root, "root certificate", "CERTIFICATE"),
            private_key=pkcs8_v1(read_pem(args.key, "private key", "PRIVATE KEY")),
            certificate_chain=read_pem(args.cert, "certificate", "CERTIFICATE"),
        )
        options = [("grpc.ssl_target_name_override", server_name)] if args.server_name else []
        with grpc.secure_channel(args.gateway, credentials, options=options) as channel:
            return call_verify(channel, request, args, gateway_pb2_grpc, [])
    context = python_tls_context(args, work_dir)
    path = os.path.join(work_dir, "gateway.sock")
    with TlsBridge(path, args.host, args.port, context, server_name, args.timeout) as bridge:
        options = [("grpc.default_authority", args.gateway)]
        with grpc.insecure_channel(f"unix:{path}", options=options) as channel:
            return call_verify(channel, request, args, gateway_pb2_grpc, bridge.errors)


def enum_name(enum, value, prefix):
    try:
        return enum.Name(value)[len(prefix) :]
    except ValueError:
        return None


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def report(verdict, badge_pb2):
    """Prints the verdict; returns the exit status."""
    outcome = enum_name(badge_pb2.Outcome, verdict.outcome, "OUTCOME_")
    if outcome is None or outcome == "UNSPECIFIED":
        print(f"UNSPECIFIED (outcome {verdict.outcome}, unknown to this client: not valid)")
        status = 10
    else:
        print(outcome)
        status = 0 if outcome == "VALID" else 10 + verdict.outcome
    if verdict.signature_valid:
        colour = enum_name(badge_pb2.Colour, verdict.colour, "COLOUR_") or str(verdict.colour)
        print(f"  colour       {colour.lower()}")
        print(f"  valid until  {utc(verdict.valid_until)}")
    if verdict.issuer_city:
        print(f"  issued by    {verdict.issuer_name or 'a city not in the list'} ({verdict.issuer_city})")
    print(f"  checked at   {utc(verdict.checked_at)}")
    print(f"  detail       {verdict.detail}")
    return status


def main(argv):
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-checkpoint-") as work_dir:
            stubs = os.path.join(work_dir, "stubs")
            os.mkdir(stubs)
            badge_pb2, gateway_pb2, gateway_pb2_grpc = compile_protos(args.proto_root, stubs)
            verdict = verify(args, work_dir, gateway_pb2, gateway_pb2_grpc)
            return report(verdict, badge_pb2)
    except NoCheck as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
