"""Load a dataset by name: find its file, verify it, parse and preprocess it once, serve the cache after."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from scaling.data.cache import file_digest, load_arrays, prepared_path, save_arrays
from scaling.data.fetch import find_data_file, verify_digest
from scaling.data.log import TIES, DataSource, InteractionLog, build_log, shuffle_ties
from scaling.data.logspec import LogSpec
from scaling.data.parsers import PARSERS
from scaling.errors import GrscaleError
from scaling.data.registry import DatasetSpec, get_spec
from scaling.data.synthetic import SyntheticConfig, generate_synthetic

ALLOW_MODIFIED = (
    "; it is not the official file: to use it anyway, pass --allow-modified-data"
    " or set data: {allow_modified: true} in the config"
)


def load_dataset(
    name: str | LogSpec,
    data_dir: Path | None = None,
    synthetic: SyntheticConfig | None = None,
    ties: str = "file",
    allow_modified: bool = False,
) -> InteractionLog:
    """The preprocessed log of dataset `name` (see scaling.data.registry.DATASETS), or of your own
    log (a LogSpec: see scaling.data.generic; its source is never "official", so modified is None).

    A real dataset's file must be the official one (its sha256 as published) unless
    `allow_modified`; where no official digest is known it is accepted as unverified. The log's
    `source` says which. Real datasets are cached under the user cache dir, keyed by the source
    file's sha256 and the preprocessing version; `synthetic` is generated from its config (fast,
    deterministic). `ties`: equal timestamps of a user in file order, or shuffled (see
    log.shuffle_ties).
    """
    if ties not in TIES:
        raise GrscaleError(f"unknown ties {ties!r}; known: {', '.join(TIES)}")
    log = _load_file_order(name, data_dir, synthetic, allow_modified)
    return shuffle_ties(log) if ties == "shuffle" else log


def _load_file_order(
    name: str | LogSpec, data_dir: Path | None, synthetic: SyntheticConfig | None, allow_modified: bool
) -> InteractionLog:
    if isinstance(name, LogSpec):
        from scaling.data.generic import load_log  # pyarrow, only where a log needs it

        log, sha256, _ = load_log(name)
        return replace(log, source=DataSource(path=name.path, sha256=sha256, modified=None))
    spec = get_spec(name)
    if spec.format == "synthetic":
        return generate_synthetic(synthetic or SyntheticConfig())
    path = find_data_file(spec, data_dir).absolute()
    sha256 = file_digest(path)
    source = _verified_source(spec, path, sha256, allow_modified)
    # The cache holds arrays only: the source is this load's, whichever path the file was found at.
    return replace(_prepared_log(spec, path, sha256), source=source)


def _verified_source(spec: DatasetSpec, path: Path, sha256: str, allow_modified: bool) -> DataSource:
    """The file's provenance; raises if it differs from the official file and that is not allowed.

    A study's numbers are only comparable with published ones on the very file they were
    measured on: a truncated or re-sorted copy under the official name must not pass as it.
    """
    official = spec.file_sha256
    if official is None:
        return DataSource(path=str(path), sha256=sha256, modified=None)
    if not allow_modified:
        verify_digest(f"{path} (dataset {spec.name!r})", "sha256", official, sha256, ALLOW_MODIFIED)
    return DataSource(path=str(path), sha256=sha256, modified=sha256 != official)


def _prepared_log(spec: DatasetSpec, path: Path, sha256: str) -> InteractionLog:
    cache_path = prepared_path(spec.name, sha256)
    arrays = load_arrays(cache_path)
    if arrays is not None:
        return InteractionLog.from_arrays(spec.name, arrays)
    raw = PARSERS[spec.format](path)
    log = build_log(spec.name, raw, spec.positive_rating, spec.min_interactions)
    save_arrays(cache_path, log.arrays())
    return log
