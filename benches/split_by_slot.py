#!/usr/bin/env python3
"""Splits a stream of RESP commands (benches/clicks.py's output) by the Redis
Cluster node that serves each command's key, for `redis-cli --pipe` per node.

    python3 benches/clicks.py server 1000000 | \
        python3 benches/split_by_slot.py OUTDIR PORT:LOW-HIGH[,LOW-HIGH…] …

Writes OUTDIR/<port>.resp for every node. The key is each command's second
word; its slot is CRC16 (XMODEM) of the hash tag (or the whole key) mod 16384,
as Redis computes it.
"""
import sys


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def slot(key):
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % 16384


outdir, specs = sys.argv[1], sys.argv[2:]
owner = [None] * 16384
files = {}
for spec in specs:
    port, ranges = spec.split(":", 1)
    files[port] = open(f"{outdir}/{port}.resp", "wb")
    for r in ranges.split(","):
        low, _, high = r.partition("-")
        for s in range(int(low), int(high or low) + 1):
            owner[s] = port

# Hash tags repeat (64 shards): remember their slots.
tag_slot = {}
stream = sys.stdin.buffer
while True:
    header = stream.readline()
    if not header:
        break
    count = int(header[1:])
    parts = []
    raw = [header]
    for _ in range(count):
        length_line = stream.readline()
        data = stream.read(int(length_line[1:]) + 2)
        raw.append(length_line)
        raw.append(data)
        parts.append(data[:-2])
    key = parts[1]
    start = key.find(b"{")
    tag = key[start:key.find(b"}", start) + 1] if start != -1 else key
    if tag not in tag_slot:
        tag_slot[tag] = slot(key)
    files[owner[tag_slot[tag]]].write(b"".join(raw))
for f in files.values():
    f.close()
