"""Load a dataset by name: find its file, parse and preprocess it once, serve the cache after."""
from __future__ import annotations

from pathlib import Path

from scaling.data.cache import file_digest, load_arrays, prepared_path, save_arrays
from scaling.data.fetch import find_data_file
from scaling.data.log import TIES, InteractionLog, build_log, shuffle_ties
from scaling.errors import GrscaleError
from scaling.data.parsers import PARSERS
from scaling.data.registry import get_spec
from scaling.data.synthetic import SyntheticConfig, generate_synthetic


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    synthetic: SyntheticConfig | None = None,
    ties: str = "file",
) -> InteractionLog:
    """The preprocessed log of dataset `name` (see scaling.data.registry.DATASETS).

    Real datasets are cached under the user cache dir, keyed by the source file's sha256 and
    the preprocessing version; `synthetic` is generated from its config (fast, deterministic).
    `ties`: equal timestamps of a user in file order, or shuffled (see log.shuffle_ties).
    """
    if ties not in TIES:
        raise GrscaleError(f"unknown ties {ties!r}; known: {', '.join(TIES)}")
    log = _load_file_order(name, data_dir, synthetic)
    return shuffle_ties(log) if ties == "shuffle" else log


def _load_file_order(name: str, data_dir: Path | None, synthetic: SyntheticConfig | None) -> InteractionLog:
    spec = get_spec(name)
    if spec.format == "synthetic":
        return generate_synthetic(synthetic or SyntheticConfig())
    path = find_data_file(spec, data_dir)
    cache_path = prepared_path(spec.name, file_digest(path))
    arrays = load_arrays(cache_path)
    if arrays is not None:
        return InteractionLog.from_arrays(spec.name, arrays)
    raw = PARSERS[spec.format](path)
    log = build_log(spec.name, raw, spec.positive_rating, spec.min_interactions)
    save_arrays(cache_path, log.arrays())
    return log
