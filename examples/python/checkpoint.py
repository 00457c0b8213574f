#!/usr/bin/env python3
"""A tessera checkpoint in Python: verify a badge through the national
gateway, or offline against a trust list fetched from it.

It uses nothing of tessera but the standard: the .proto files in
proto/tessera/v1/, compiled at run time with grpcio-tools into a temporary
directory, a stock grpcio stub over grpcio's own TLS
(grpc.ssl_channel_credentials with the bundle's files: the checkpoint's
ECDSA P-256 certificate and key, trusting only the national root), and for
the offline check tessera_offline.py (cryptography plus the rules of
docs/PROTOCOL.md).

  checkpoint.py --gateway HOST:PORT --bundle DIR TEXT       online: Gateway.Verify
  checkpoint.py --gateway HOST:PORT --bundle DIR --offline TEXT
        fetch the trust list (FetchTrustList), verify it against the root,
        then verify the badge with no further network
  checkpoint.py --trust-list FILE --root ROOT --offline TEXT
        offline against a list kept on disk

Exit status, as for `tessera verify` (docs/OPERATIONS.md section 6):
  0        VALID (the only status on which a gate may open)
  10 + n   any other outcome, n its wire number in badge.proto
           (12 REVOKED, 15 BAD_SIGNATURE, 18 MALFORMED, 19 STATUS_UNAVAILABLE, ...)
  10       an outcome this client does not know
  1        no check was made (files unreadable, gateway unreachable or refused
           us, trust list refused)
  2        usage error
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

import standard
import tessera_offline


class NoCheck(Exception):
    """No verdict could be obtained; exit status 1."""


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Verify a tessera badge through the national gateway over mutual TLS, "
        "or offline against a verified trust list.",
        epilog="Example: %(prog)s --gateway 127.0.0.1:7000 "
        "--bundle federation/authority/verifiers/420000-wuhan-railway-station 'TB1:...'",
    )
    p.add_argument("--gateway", help="the gateway, HOST:PORT")
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
        "--offline",
        action="store_true",
        help="verify the badge here, against a trust list verified against the root: "
        "fetched from --gateway, or read from --trust-list",
    )
    p.add_argument(
        "--trust-list",
        help="with --offline: a signed trust list file (an encoded SignedTrustList) "
        "instead of fetching one",
    )
    p.add_argument(
        "--save-trust-list",
        help="with --offline and --gateway: also write the fetched list to this file",
    )
    p.add_argument(
        "--now", type=int, help="with --offline: the time of the check, Unix seconds (default: now)"
    )
    p.add_argument(
        "--proto-root",
        default=standard.DEFAULT_PROTO_ROOT,
        help="the directory holding tessera/v1/*.proto (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    badge = p.add_mutually_exclusive_group(required=True)
    badge.add_argument("text", nargs="?", help="the badge's QR text, TB1:...")
    badge.add_argument("--text-file", help="a file holding the QR text (e.g. a demo's badge.txt)")
    badge.add_argument("--envelope", help="a file holding the envelope bytes (an encoded SignedBadge)")
    args = p.parse_args(argv)
    online = not args.offline or args.trust_list is None
    if online and args.gateway is None:
        p.error("--gateway is required (or --offline with --trust-list)")
    if args.trust_list is not None and not args.offline:
        p.error("--trust-list goes with --offline")
    needed = (("cert", "verifier.crt"), ("key", "verifier.key"), ("root", "root.crt"))
    for name, file in needed:
        if getattr(args, name) is None:
            if args.bundle is None:
                if online or name == "root":
                    p.error(f"--{name} or --bundle is required")
                continue
            setattr(args, name, os.path.join(args.bundle, file))
    if args.gateway is not None:
        host, sep, port = args.gateway.rpartition(":")
        if not sep or not host or not port.isdigit():
            p.error(f"--gateway {args.gateway!r} is not HOST:PORT")
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


# --- online -------------------------------------------------------------------


def channel(args):
    """A grpcio channel to the gateway over grpcio's own mutual TLS."""
    import grpc

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_pem(args.root, "root certificate", "CERTIFICATE"),
        private_key=read_pem(args.key, "private key", "PRIVATE KEY"),
        certificate_chain=read_pem(args.cert, "certificate", "CERTIFICATE"),
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.gateway, credentials, options=options)


def call(args, method, request):
    import grpc

    with channel(args) as ch:
        stub = args.standard.gateway_grpc.GatewayStub(ch)
        try:
            return getattr(stub, method)(request, timeout=args.timeout)
        except grpc.RpcError as e:
            raise NoCheck(
                f"the gateway at {args.gateway} answered {method} with "
                f"{e.code().name}: {e.details()}"
            ) from e


def read_badge(args):
    """('envelope', bytes) or ('text', str)."""
    if args.envelope is not None:
        return "envelope", read(args.envelope, "badge envelope")
    if args.text_file is not None:
        data = read(args.text_file, "badge text")
        try:
            return "text", data.decode("utf-8")
        except UnicodeDecodeError:
            # Not text at all: the gateway will call it MALFORMED.
            return "text", data.decode("utf-8", "replace")
    return "text", args.text


def verify_online(args):
    kind, badge = read_badge(args)
    gateway = args.standard.gateway
    if kind == "envelope":
        request = gateway.VerifyRequest(envelope=badge)
    else:
        request = gateway.VerifyRequest(qr_text=badge)
    return call(args, "Verify", request)


# --- offline ------------------------------------------------------------------


def root_der(args):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = read_pem(args.root, "root certificate", "CERTIFICATE")
    try:
        return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    except ValueError as e:
        raise NoCheck(f"the root certificate {args.root} does not load: {e}") from e


def verify_offline(args):
    now = args.now if args.now is not None else int(time.time())
    try:
        root = tessera_offline.root_anchor(root_der(args))
    except tessera_offline.CertRefused as e:
        raise NoCheck(f"the root certificate {args.root} is not a tessera root: {e}") from e
    if args.trust_list is not None:
        signed = read(args.trust_list, "trust list")
    else:
        answer = call(args, "FetchTrustList", args.standard.gateway.FetchTrustListRequest())
        if not answer.HasField("list"):
            raise NoCheck(f"the gateway at {args.gateway} holds no trust list")
        signed = answer.list.SerializeToString()
        if args.save_trust_list:
            with open(args.save_trust_list, "wb") as f:
                f.write(signed)
    try:
        trust = tessera_offline.verify_trust_list(signed, root, now, args.standard)
    except tessera_offline.ListRefused as e:
        raise NoCheck(f"the trust list was refused: {e}") from e
    kind, badge = read_badge(args)
    if kind == "envelope":
        result = tessera_offline.verify_envelope(badge, trust, now, args.standard)
    else:
        result = tessera_offline.verify_text(badge, trust, now, args.standard)
    badge_pb2 = args.standard.badge
    return badge_pb2.Verdict(
        outcome=badge_pb2.Outcome.Value(f"OUTCOME_{result.outcome}"),
        colour=badge_pb2.Colour.Value(f"COLOUR_{result.colour}") if result.colour else 0,
        valid_until=result.valid_until,
        issuer_city=result.issuer_city,
        issuer_name=result.issuer_name,
        checked_at=now,
        signature_valid=result.outcome == "VALID",
        detail=result.detail,
    ), result.reason, trust.sequence


# --- the verdict ----------------------------------------------------------------


def enum_name(enum, value, prefix):
    try:
        return enum.Name(value)[len(prefix) :]
    except ValueError:
        return None


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def report(verdict, badge_pb2, reason=None):
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
    reason = reason if reason is not None else getattr(verdict, "reason", "")
    if reason:
        print(f"  reason       {reason}")
    print(f"  detail       {verdict.detail}")
    return status


def main(argv):
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-checkpoint-") as work_dir:
            try:
                args.standard = standard.load(args.proto_root, work_dir)
            except standard.ProtoError as e:
                raise NoCheck(str(e)) from e
            if args.offline:
                verdict, reason, sequence = verify_offline(args)
                status = report(verdict, args.standard.badge, reason)
                print(f"  trust list   {sequence}, verified against the root; the city's status was not asked")
                return status
            return report(verify_online(args), args.standard.badge)
    except NoCheck as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
