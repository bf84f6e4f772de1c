"""Finding dataset files on disk, and downloading the official ones with checksums verified."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from scaling.data.cache import cache_root, file_digest
from scaling.files import atomic_write, user_file_mode
from scaling.data.registry import DatasetSpec
from scaling.errors import GrscaleError


def user_data_dir(spec: DatasetSpec) -> Path:
    return cache_root() / "data" / spec.name


def candidate_dirs(spec: DatasetSpec, data_dir: Path | None) -> list[Path]:
    """--data-dir alone if given; else $GRSCALE_DATA_DIR/<folder> for each folder name; then the user cache."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = []
    if os.environ.get("GRSCALE_DATA_DIR"):
        root = Path(os.environ["GRSCALE_DATA_DIR"])
        dirs.extend(root / folder for folder in spec.folders)
    dirs.append(user_data_dir(spec))
    return dirs


def find_data_file(spec: DatasetSpec, data_dir: Path | None = None) -> Path:
    dirs = candidate_dirs(spec, data_dir)
    for folder in dirs:
        if (folder / spec.filename).is_file():
            return folder / spec.filename
    looked = ", ".join(str(d) for d in dirs)
    raise GrscaleError(
        f"{spec.filename} for dataset {spec.name!r} not found (looked in {looked}); "
        f"run `grscale data fetch {spec.name}` or download it from {spec.url}"
    )


def _download(url: str, dest_dir: Path, timeout: float) -> tuple[Path, dict[str, str]]:
    """Stream `url` to a temporary file in dest_dir; return it with its md5 and sha256."""
    digests = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".download.", suffix=".tmp")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                for digest in digests.values():
                    digest.update(chunk)
                done += len(chunk)
                if sys.stderr.isatty():
                    shown = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
                    print(f"\rdownloading {url}: {shown}", end="", file=sys.stderr)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), {name: digest.hexdigest() for name, digest in digests.items()}


def verify_digest(what: str, algorithm: str, expected: str, found: str, advice: str = "") -> None:
    """Raise a one-line GrscaleError naming both digests unless `found` is `expected`; `advice`
    (e.g. how to go on anyway) ends the message."""
    if found != expected:
        raise GrscaleError(
            f"checksum mismatch for {what}: expected {algorithm} {expected}, found {found}{advice}"
        )


def fetch_dataset(spec: DatasetSpec, data_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download `spec`'s official file into data_dir (default: the user cache dir), verified.

    Nothing is left in the destination unless every checksum matched.
    """
    if not spec.url:
        raise GrscaleError(f"dataset {spec.name!r} is generated, there is nothing to fetch")
    dest_dir = Path(data_dir) if data_dir is not None else user_data_dir(spec)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.filename
    try:
        download, digests = _download(spec.url, dest_dir, timeout)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise GrscaleError(
            f"could not download {spec.url} ({reason}); place {spec.filename} in {dest_dir} by hand"
        ) from None
    try:
        for check in spec.checksums:
            if not check.member:
                verify_digest(spec.url, check.algorithm, check.digest, digests[check.algorithm])
        if spec.archive_member:
            _extract_member(download, spec, target)
        else:
            os.chmod(download, user_file_mode())  # mkstemp made it 0o600
            os.replace(download, target)
    finally:
        download.unlink(missing_ok=True)
    return target


def _extract_member(archive: Path, spec: DatasetSpec, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(spec.archive_member) as member:
            atomic_write(target, lambda handle: shutil.copyfileobj(member, handle))
    except (zipfile.BadZipFile, KeyError) as error:
        raise GrscaleError(f"{spec.url}: not a zip archive holding {spec.archive_member} ({error})") from None
    for check in spec.checksums:
        if check.member:
            actual = file_digest(target, check.algorithm)
            if actual != check.digest:
                target.unlink(missing_ok=True)
                verify_digest(f"{check.member} in {spec.url}", check.algorithm, check.digest, actual)
