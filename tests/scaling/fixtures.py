"""Small files in each dataset's official format, written by the tests (no real data needed)."""
from __future__ import annotations

from pathlib import Path

# user, item, rating, timestamp; user 1 has a timestamp tie (items 30 and 10 at t=100, in that file order)
ROWS = [
    (1, 30, 5, 100), (1, 10, 3, 100), (1, 20, 4, 90), (1, 40, 2, 200),
    (2, 10, 4, 50), (2, 20, 1, 60), (2, 30, 5, 70), (2, 50, 4, 80),
    (7, 20, 3, 10), (7, 50, 4, 5), (7, 10, 5, 30),
]


def write_ml100k(folder: Path) -> Path:
    path = folder / "u.data"
    path.write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS))
    return path


def write_ml1m(folder: Path) -> Path:
    path = folder / "ratings.dat"
    path.write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS))
    return path


def write_ml20m(folder: Path) -> Path:
    path = folder / "ratings.csv"
    body = "".join(f"{u},{i},{r}.5,{t}\n" for u, i, r, t in ROWS)
    path.write_text("userId,movieId,rating,timestamp\n" + body)
    return path


def write_amazon(folder: Path, rows=None) -> Path:
    path = folder / "ratings_Books.csv"
    rows = rows if rows is not None else [(f"U{u}", f"B{i:04d}", float(r), t) for u, i, r, t in ROWS]
    path.write_text("".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    return path


def write_beauty(folder: Path) -> Path:
    path = folder / "Beauty.txt"
    path.write_text("1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n3 4 12 13\n")
    return path
