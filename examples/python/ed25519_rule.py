"""The tessera Ed25519 verification rule (docs/PROTOCOL.md, "Ed25519
signatures"), written out in Python.

OpenSSL (through `cryptography`) checks the usual cofactorless equation
[S]B = R + [k]A. tessera's rule is cofactored, [8][S]B = [8]R + [8][k]A, with
strict preconditions on S, R and A, so that a batch of signatures and each
signature alone always get the same answer. Every signature OpenSSL accepts
and that meets the preconditions meets the cofactored equation too, so
OpenSSL is tried first; only a signature it refuses is checked again here, in
plain integer arithmetic on the curve (slow, but exact).
"""

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# The base point, in extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z,
# x*y = T/Z.
_BY = 4 * pow(5, P - 2, P) % P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BASE = (_BX, _BY, 1, _BX * _BY % P)
IDENTITY = (0, 1, 1, 0)


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _negate(point):
    x, y, z, t = point
    return ((-x) % P, y, z, (-t) % P)


def _multiply(scalar, point):
    result = IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _is_identity(point):
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def _times_eight(point):
    for _ in range(3):
        point = _add(point, point)
    return point


def decode_point(encoded):
    """The point an encoding names, or None when the encoding is not
    canonical (y >= p, or x = 0 with the sign bit set) or names no point."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        if (v * x * x + u) % P != 0:
            return None
        x = x * SQRT_M1 % P
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def names_a_point(encoded):
    """K4: whether 32 bytes decode to a curve point at all, read leniently
    (y is the low 255 bits reduced mod p; the sign bit is ignored): whether
    (y^2 - 1) / (d y^2 + 1) is a square mod p. S2 is stricter."""
    if len(encoded) != 32:
        return False
    y = (int.from_bytes(encoded, "little") & ((1 << 255) - 1)) % P
    w = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    return w == 0 or pow(w, (P - 1) // 2, P) == 1


def is_small_order(point):
    return _is_identity(_times_eight(point))


def acceptable_point(encoded):
    """Rule steps 2 and 3: canonical, on the curve, not of small order."""
    point = decode_point(encoded)
    return point if point is not None and not is_small_order(point) else None


def verify(public_key, signature, message):
    """Whether `signature` (64 bytes) by `public_key` (32 bytes) holds over
    `message` under tessera's rule."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    r_bytes, s_bytes = signature[:32], signature[32:]
    s = int.from_bytes(s_bytes, "little")
    if s >= L:
        return False
    a = acceptable_point(public_key)
    r = acceptable_point(r_bytes)
    if a is None or r is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        pass
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % L
    difference = _add(_multiply(s, BASE), _negate(_add(r, _multiply(k, a))))
    return _is_identity(_times_eight(difference))
