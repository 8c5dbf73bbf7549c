#!/usr/bin/env python3
"""A ~500 MB tree for the export and registry benchmarks, the same on every
run and machine (seeded): half text-like (compressible), half random; a few
thousand files of mixed sizes. Usage: gen-tree.py OUT_DIR."""
import os, random, sys

rng = random.Random(2024)
out = sys.argv[1]
letters = "etaoinshrdlucmfwypvbgkqjxz"
words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(5000)]
soup = " ".join(rng.choices(words, k=1_400_000)).encode()

def text(n):
    parts, left = [], n
    while left > 0:
        at = rng.randrange(len(soup) - 4096)
        take = min(left, rng.randint(256, 4096))
        parts.append(soup[at:at + take])
        left -= take
    return b"".join(parts)

sizes = [32 << 20] * 4 + [4 << 20] * 40
sizes += [int(2 ** rng.uniform(8, 19)) for _ in range(3000)]
for i, size in enumerate(sizes):
    d = f"{out}/d{i % 40:02}"
    os.makedirs(d, exist_ok=True)
    data = text(size) if i % 2 == 0 else rng.randbytes(size)
    with open(f"{d}/f{i:04}.{'txt' if i % 2 == 0 else 'bin'}", "wb") as f:
        f.write(data)
