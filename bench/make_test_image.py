#!/usr/bin/env python3
"""Make a reproducible test image for the copy benchmarks.

usage: make_test_image.py PATH SIZE_MIB DATA_PERCENT [--seed N]

PATH becomes a sparse file of SIZE_MIB MiB in which DATA_PERCENT of the 1 MiB slots, picked at
random (seeded), hold random bytes and the rest are holes. 100 gives a fully written image.
The benchmark workloads use `4096 30` (sparse) and `2048 100` (dense).
"""
import os
import random
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, mib, pct = argv[0], int(argv[1]), int(argv[2])
    seed = int(argv[argv.index('--seed') + 1]) if '--seed' in argv else 42
    if mib <= 0 or not 0 <= pct <= 100:
        print('SIZE_MIB must be > 0 and DATA_PERCENT within 0..100', file=sys.stderr)
        return 2
    rng = random.Random(seed)
    slot = 1 << 20
    slots = sorted(rng.sample(range(mib), mib * pct // 100))
    with open(path, 'wb') as f:
        f.truncate(mib * slot)
        for s in slots:
            f.seek(s * slot)
            f.write(rng.randbytes(slot) if hasattr(rng, 'randbytes') else os.urandom(slot))
        f.flush()
        os.fsync(f.fileno())
    print(f'{path}: {mib} MiB, {len(slots)} MiB of data in 1 MiB slots (seed {seed})')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
