"""Write ``my_interactions.csv``, the small synthetic file behind ``own-data.yaml``.

Seeded, so the file it writes is byte for byte the one shipped here. 300 users in two taste
communities rate 200 items over one year (unix seconds); users start at different times, so a
temporal split has test users with little or no history, as real logs do.

    python examples/make_demo_data.py [OUT.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N_USERS, N_ITEMS, YEAR = 300, 200, 365 * 24 * 3600
T0 = 1_700_000_000


def rows(seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (1.0 + np.arange(N_ITEMS)) ** 0.7
    out = ["user_id,item_id,rating,ts"]
    for u in range(N_USERS):
        community = u % 2
        taste = np.where(np.arange(N_ITEMS) % 2 == community, 4.0, 0.5) * popularity
        n = int(rng.integers(6, 30))
        items = rng.choice(N_ITEMS, size=n, replace=False, p=taste / taste.sum())
        start = int(rng.integers(0, YEAR))
        times = np.sort(start + rng.integers(0, YEAR // 3, size=n))
        for i, t in zip(items, times, strict=True):
            liked = int(i) % 2 == community
            rating = int(np.clip(rng.normal(4.3 if liked else 2.5, 0.8), 1, 5).round())
            out.append(f"user{u:03d},item{int(i):03d},{rating},{T0 + int(t)}")
    return out


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("my_interactions.csv")
    path.write_text("\n".join(rows()) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv)
