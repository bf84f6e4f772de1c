"""The datasets grscale knows by name: where their files live, how to fetch and parse them."""
from __future__ import annotations

from dataclasses import dataclass

from scaling.errors import GrscaleError


@dataclass(frozen=True, kw_only=True)
class Checksum:
    """A digest to verify after download. `member` is a path inside the archive, or "" for the archive."""

    algorithm: str  # "sha256" or "md5" (GroupLens publishes md5 for its archives)
    digest: str
    member: str = ""


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    name: str
    filename: str  # the file the parser reads
    format: str  # parser key in scaling.data.parsers.PARSERS
    folders: tuple[str, ...]  # folder names tried under $GRSCALE_DATA_DIR
    url: str = ""  # official download (an archive or the file itself)
    archive_member: str = ""  # path of `filename` inside the archive ("" if the url is the file)
    checksums: tuple[Checksum, ...] = ()
    positive_rating: float | None = 4.0  # rating >= this is a positive engagement; None: no labels
    min_interactions: int = 0  # k-core filter applied in preprocessing (0: none)
    description: str = ""

    @property
    def file_sha256(self) -> str | None:
        """The official sha256 of the file the parser reads, or None where none is published.

        That is the checksum of `archive_member`, or of the download itself when the url is the
        file (archive_member ""); an archive's digest says nothing about one file extracted from it.
        """
        for check in self.checksums:
            if check.algorithm == "sha256" and check.member == self.archive_member:
                return check.digest
        return None


GROUPLENS = "https://files.grouplens.org/datasets/movielens"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="synthetic",
            filename="",
            format="synthetic",
            folders=(),
            positive_rating=None,
            description="generated: Dirichlet-process user interests drifting over time (no download)",
        ),
        DatasetSpec(
            name="ml-100k",
            filename="u.data",
            format="tsv-ratings",
            folders=("ml-100k",),
            url=f"{GROUPLENS}/ml-100k.zip",
            archive_member="ml-100k/u.data",
            checksums=(
                Checksum(algorithm="md5", digest="0e33842e24a9c977be4e0107933c0723"),
                Checksum(
                    algorithm="sha256",
                    digest="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                    member="ml-100k/u.data",
                ),
            ),
            description="MovieLens 100K (GroupLens), tab-separated user item rating timestamp",
        ),
        DatasetSpec(
            name="ml-1m",
            filename="ratings.dat",
            format="ml1m-ratings",
            folders=("ml-1m",),
            url=f"{GROUPLENS}/ml-1m.zip",
            archive_member="ml-1m/ratings.dat",
            checksums=(
                Checksum(algorithm="md5", digest="c4d9eecfca2ab87c1945afe126590906"),
                Checksum(
                    algorithm="sha256",
                    digest="506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
                    member="ml-1m/ratings.dat",
                ),
            ),
            description="MovieLens 1M (GroupLens), user::item::rating::timestamp",
        ),
        DatasetSpec(
            name="ml-20m",
            filename="ratings.csv",
            format="ml20m-ratings",
            folders=("ml-20m",),
            url=f"{GROUPLENS}/ml-20m.zip",
            archive_member="ml-20m/ratings.csv",
            checksums=(Checksum(algorithm="md5", digest="cd245b17a1ae2cc31bb14903e1204af3"),),
            description="MovieLens 20M (GroupLens), CSV with header userId,movieId,rating,timestamp",
        ),
        DatasetSpec(
            name="amazon-books",
            filename="ratings_Books.csv",
            format="amazon-ratings",
            folders=("amazon-books",),
            url="http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/ratings_Books.csv",
            min_interactions=5,
            description="Amazon Books ratings (SNAP, McAuley et al.), user,item,rating,timestamp; 5-core filtered",
        ),
        DatasetSpec(
            name="beauty",
            filename="Beauty.txt",
            format="s3rec-sequences",
            folders=("beauty", "amazon-beauty"),
            url="https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/Beauty.txt",
            checksums=(
                Checksum(
                    algorithm="sha256",
                    digest="226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
                ),
            ),
            positive_rating=None,
            description="Amazon Beauty 5-core in S3-Rec format: one line per user, items in time order",
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise GrscaleError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        ) from None
