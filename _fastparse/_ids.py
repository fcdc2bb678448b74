"""`_id` contract v2: a per-event 128-bit BLAKE2b of host, file, generation and offset.

Every event is indexed with `op_type: create` under an `_id` that must be the same on
every replay and different for every distinct event; a 409 then means "already
delivered". The `_id` is therefore a contract: changing how it is computed for bytes
that were already sent would double them on the next replay.

Contract v2 (issue 5): ``_id = base64url_nopad(BLAKE2b-128(key || le64(offset)))`` where
the per-generation *key* is::

    b"shipper-id/2\\0" + host_id + b"\\0" + file_key + b"\\0" + le64(generation)

host_id and file_key are hex strings (no NUL), so the encoding is unambiguous; the key is
71 bytes with the agent's ids (32 + 16 hex characters), so key and offset together fit one
128-byte BLAKE2b block: one compression per event. The key is computed once per file
generation (in Python, here) and handed to the parser, which hashes per event in C
(`_fastparse/blake2b.h`, `shipper_event_id`). This module is the pure-Python twin and the
reference; both must give identical ids (tests/test_ids.py checks them against each
other and against hashlib over random inputs).

Contract v1 (`shipper.registry.id_prefix`) stays for file generations that began under it.
"""

from __future__ import annotations

import base64
import struct
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Sequence
from hashlib import blake2b

ID_SCHEME_V2 = b"shipper-id/2"
ID_LEN = 22  # base64url of 16 bytes, unpadded

_le64 = struct.Struct("<Q").pack


def id_key(host_id: str, file_key: str, generation: int) -> bytes:
    """The per-generation bytes every v2 `_id` of that file generation starts its hash with."""
    h, k = host_id.encode("ascii"), file_key.encode("ascii")
    if b"\0" in h or b"\0" in k:
        raise ValueError("host_id and file_key must not contain NUL")
    if not 0 <= generation < 2**64:
        raise ValueError(f"generation out of range: {generation}")
    return ID_SCHEME_V2 + b"\0" + h + b"\0" + k + b"\0" + _le64(generation)


def event_id_from_key(key: bytes, offset: int) -> str:
    """The v2 `_id` of the event starting at byte `offset` of the generation `key` names."""
    digest = blake2b(key + _le64(offset), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest)[:ID_LEN].decode("ascii")


def event_id_bytes(key: bytes, offset: int) -> bytes:
    """``event_id_from_key`` as ASCII bytes: what the twin parser writes into a body."""
    return base64.urlsafe_b64encode(blake2b(key + _le64(offset), digest_size=16).digest())[:ID_LEN]


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def id_batcher(key: bytes) -> Callable[[Iterable[int]], Sequence[bytes]]:
    """``event_id_bytes(key, off)`` of many offsets at once, as the twin parser writes them:
    each hash a copy of one state that has absorbed the key (hashing ``key + le64(off)``
    incrementally is the same digest), and one base64 pass for the lot: a digest followed
    by two zero bytes is 18 bytes, 24 base64 characters whose first 22 are the digest's
    unpadded base64, so the batch's digests joined that way encode in one call and are cut
    every 24 characters (by a ``struct`` format, no per-id slice)."""
    copy = blake2b(key, digest_size=16).copy
    le64 = _le64

    def ids(offsets: Iterable[int]) -> Sequence[bytes]:
        digests: list[bytes] = []
        keep = digests.append
        for off in offsets:
            h = copy()
            h.update(le64(off))
            keep(h.digest())
        if not digests:
            return ()
        digests.append(b"")
        b64 = b2a_base64(b"\0\0".join(digests), newline=False).translate(_URLSAFE)
        # a Struct of its own, not struct.unpack's: that caches up to 100 compiled formats,
        # and this one holds a code per id (a chunk of short lines: ~100k of them)
        return struct.Struct("22s2x" * (len(digests) - 1)).unpack(b64)

    return ids


def event_id(host_id: str, file_key: str, generation: int, offset: int) -> str:
    """The v2 `_id` of one event (convenience; the hot path computes the key once)."""
    return event_id_from_key(id_key(host_id, file_key, generation), offset)


def event_ids(key: bytes, offsets: list[int]) -> list[str]:
    """The v2 `_id`s of many events of one generation (the twin parser's batch form)."""
    return [event_id_from_key(key, off) for off in offsets]
