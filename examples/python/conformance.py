#!/usr/bin/env python3
"""Runs tessera's conformance vectors (conformance/vectors.json) through the
offline verifier in tessera_offline.py, as docs/PROTOCOL.md ("Conformance
suite") tells a vendor to, and reports every vector that disagrees.

  conformance.py [--vectors DIR] [--proto-root DIR] [--verbose]

Exit status: 0 when every vector agrees, 1 when any disagrees (each is named
on standard output), 2 for a usage error or unreadable vectors. The last line
is "N passed, M failed".
"""

import argparse
import json
import os
import sys
import tempfile

import standard
import tessera_offline

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTORS = os.path.normpath(os.path.join(HERE, "..", "..", "conformance"))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vectors", default=DEFAULT_VECTORS, help="the conformance directory")
    p.add_argument("--proto-root", default=standard.DEFAULT_PROTO_ROOT)
    p.add_argument("--verbose", action="store_true", help="print every vector, not only failures")
    return p.parse_args(argv)


class Files:
    """The vectors' files, each read once."""

    def __init__(self, directory):
        self.directory = directory
        self.cache = {}

    def __call__(self, name):
        if name not in self.cache:
            with open(os.path.join(self.directory, name), "rb") as f:
                self.cache[name] = f.read()
        return self.cache[name]


def badge_result(vector, files, std):
    root = tessera_offline.root_anchor(files(vector["root"]))
    trust = tessera_offline.verify_trust_list(
        files(vector["trust_list"]), root, vector["trust_list_accepted_at"], std
    )
    if "text" in vector:
        result = tessera_offline.verify_text(vector["text"], trust, vector["now"], std)
    else:
        envelope = bytes.fromhex(vector["envelope_hex"])
        result = tessera_offline.verify_envelope(envelope, trust, vector["now"], std)
    got = {"outcome": result.outcome, "reason": result.reason}
    if result.outcome == "VALID":
        got.update(
            colour=result.colour, valid_until=result.valid_until, issuer_city=result.issuer_city
        )
    return got


def list_result(vector, files, std):
    root = tessera_offline.root_anchor(files(vector["root"]))
    now = vector["now"]
    held = None
    if "held" in vector:
        held = tessera_offline.verify_trust_list(files(vector["held"]), root, now, std)
    try:
        checked = tessera_offline.verify_trust_list(
            files(vector["candidate"]), root, now, std, held=held
        )
    except tessera_offline.ListRefused as e:
        return {"accepted": False, "reason": e.reason}
    return {
        "accepted": True,
        "reason": "accepted",
        "sequence": checked.sequence,
        "freshness": "fresh" if now <= checked.next_update else "stale",
    }


def run(vectors, files, std, verbose):
    passed = failed = 0
    for kind, check in (("badge_vectors", badge_result), ("trust_list_vectors", list_result)):
        for vector in vectors[kind]:
            try:
                got = check(vector, files, std)
            except Exception as e:  # a crash is a disagreement, named like any other
                got = {"error": f"{type(e).__name__}: {e}"}
            if got == vector["expected"]:
                passed += 1
                if verbose:
                    print(f"ok    {vector['id']}")
            else:
                failed += 1
                print(f"FAIL  {vector['id']} ({vector['rule']}: {vector['description']})")
                print(f"        expected {json.dumps(vector['expected'], sort_keys=True)}")
                print(f"        got      {json.dumps(got, sort_keys=True)}")
    return passed, failed


def main(argv):
    args = parse_args(argv)
    try:
        with open(os.path.join(args.vectors, "vectors.json"), encoding="utf-8") as f:
            vectors = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {args.vectors}/vectors.json: {e}", file=sys.stderr)
        return 2
    if vectors.get("format") != "tessera-conformance/1":
        print(f"error: unknown vectors format {vectors.get('format')!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tessera-conformance-") as work_dir:
        std = standard.load(args.proto_root, work_dir)
        passed, failed = run(vectors, Files(args.vectors), std, args.verbose)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
