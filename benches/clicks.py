"""Stored clicks as Redis commands (RESP, for `redis-cli --pipe`), in the
shape the server writes (`server`) or in one of the alternative encodings
benches/memory.sh compares. Used by memory.sh and linearity.sh.

    python3 benches/clicks.py MODE N [--start I] [--t0 UNIX] [--per-hour P]
                              [--buckets B] [--prefix P] [--offer O --aff A]
                              [--markers] [--ad-ids FRACTION]

Click i (from --start) is made at t0 + i * 3600 / per_hour. Every click is a
distinct visitor. Offers and affiliates are drawn from a realistic mix unless
--offer and --aff fix them. --markers also writes each visitor's
duplicate-click marker, as the server does for a unique click. --ad-ids F
gives that fraction of the clicks (mode server) a gclid, an fbclid and a GA
client id of real length, stored in the record's longer form. Mirrors
`Click::encode` (src/domain/click.rs) and `Keys::click` (src/store/keys.rs)
byte for byte; change them together.
"""
import argparse
import random
import sys

B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TTL = b"2592000"
MODES = ("server", "string", "string_dedup", "hash", "bucket", "bucket_lp")

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=MODES)
parser.add_argument("n", type=int)
parser.add_argument("--start", type=int, default=0)
parser.add_argument("--t0", type=int, default=1763900000)
parser.add_argument("--per-hour", type=int, default=3_600_000)
parser.add_argument("--buckets", type=int, default=64)
parser.add_argument("--prefix", default="cb")
parser.add_argument("--offer")
parser.add_argument("--aff")
parser.add_argument("--markers", action="store_true")
parser.add_argument("--ad-ids", type=float, default=0.0)
args = parser.parse_args()

rng = random.Random(42 + args.start)
prefix = args.prefix.encode()
offers = [args.offer.encode()] if args.offer else [b"summer-sale", b"o_1042", b"vpn-trial-de", b"casino-ca-2"]
affs = [args.aff.encode()] if args.aff else [b"aff_%d" % i for i in range(1, 200)]
out = sys.stdout.buffer


def resp(*parts):
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def b64(k):
    bits = rng.getrandbits(6 * k)
    return bytes(B64[(bits >> (6 * i)) & 63] for i in range(k))


def b64_number(value, k):
    return bytes(B64[(value >> (6 * (k - 1 - i))) & 63] for i in range(k))


buf = []
expired_buckets = set()


def expire_once(bucket):
    # Once per bucket: the server sets it again only when a click outlives it.
    if bucket not in expired_buckets:
        expired_buckets.add(bucket)
        buf.append(resp(b"EXPIRE", bucket, TTL))


for i in range(args.start, args.start + args.n):
    visitor = b64(11)
    cid = visitor[:1] + b64(21)
    shard = cid[:1]
    ts = args.t0 + i * 3600 // args.per_hour
    offer = offers[i % len(offers)]
    aff = affs[rng.randrange(len(affs))]
    sub1 = b"%012d" % rng.randrange(10**11, 10**12)
    sub2 = b64(8)
    value = b"\0".join([b"1", b"%d" % ts, offer, aff, sub1, sub2, b"", b"", b"", b"fb", visitor, b"1"])
    key = prefix + b":{" + shard + b"}:c:" + cid
    marker = prefix + b":{" + shard + b"}:u:" + offer + b"|" + aff + b"|" + visitor
    if args.mode == "server":
        bucket = (prefix + b":{" + shard + b"}:c:" + b64_number(ts // 3600, 4)
                  + b64_number(rng.randrange(args.buckets), 2))
        value = b"\0".join([b"3", b"%d" % ts, TTL, offer, aff, sub1, sub2, b"", b"", b"", b"fb", visitor])
        if rng.random() < args.ad_ids:
            # Version 4: version 3's fields, then gclid, fbclid, ttclid, ga_client_id.
            value = b"4" + value[1:] + b"\0".join([b"", b"Cj0KCQiA" + b64(60), b"IwAR" + b64(57),
                                                   b"", b"GA1.1.%d.%d" % (rng.randrange(10**9, 10**10), ts)])
        buf.append(resp(b"HSET", bucket, b64(16), value))
        expire_once(bucket)
    elif args.mode in ("string", "string_dedup"):
        buf.append(resp(b"SET", key, value, b"EX", TTL))
    elif args.mode == "hash":
        buf.append(resp(b"HSET", key, b"t", b"%d" % ts, b"o", offer, b"a", aff,
                        b"1", sub1, b"2", sub2, b"s", b"fb", b"v", visitor, b"u", b"1"))
        buf.append(resp(b"EXPIRE", key, TTL))
    else:  # bucket, bucket_lp
        bucket = prefix + b":{" + shard + b"}:c:" + b"%d" % (ts // 3600)
        if args.mode == "bucket_lp":
            bucket += b":" + cid[1:2]
        buf.append(resp(b"HSET", bucket, cid, value))
        expire_once(bucket)
    if args.markers or args.mode == "string_dedup":
        buf.append(resp(b"SET", marker, b"1", b"NX", b"EX", b"86400"))
    if len(buf) >= 4096:
        out.write(b"".join(buf))
        buf.clear()
out.write(b"".join(buf))
