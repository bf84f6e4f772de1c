import hashlib
import http.server
import io
import os
import stat
import threading
import zipfile
from dataclasses import replace

import pytest

from scaling.data.fetch import fetch_dataset
from scaling.data.registry import Checksum, get_spec
from scaling.errors import GrscaleError

RATINGS = b"1::10::5::100\n1::20::3::200\n2::10::4::50\n"


def make_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", RATINGS)
        zf.writestr("ml-1m/README", b"terms")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server():
    files = {"/ml-1m.zip": make_archive(), "/Beauty.txt": b"1 1 2 3\n"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()


def ml1m_spec(base: str, files: dict, archive_sha: str | None = None, member_sha: str | None = None):
    archive = files["/ml-1m.zip"]
    return replace(
        get_spec("ml-1m"),
        url=f"{base}/ml-1m.zip",
        checksums=(
            Checksum(algorithm="sha256", digest=archive_sha or hashlib.sha256(archive).hexdigest()),
            Checksum(algorithm="sha256", digest=member_sha or hashlib.sha256(RATINGS).hexdigest(), member="ml-1m/ratings.dat"),
        ),
    )


def test_fetch_extracts_and_verifies(server, tmp_path):
    base, files = server
    path = fetch_dataset(ml1m_spec(base, files), tmp_path)
    assert path == tmp_path / "ratings.dat" and path.read_bytes() == RATINGS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.dat"]


def test_wrong_archive_checksum_names_both_digests_and_leaves_nothing(server, tmp_path):
    base, files = server
    actual = hashlib.sha256(files["/ml-1m.zip"]).hexdigest()
    with pytest.raises(GrscaleError) as info:
        fetch_dataset(ml1m_spec(base, files, archive_sha="0" * 64), tmp_path)
    assert "0" * 64 in str(info.value) and actual in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_member_checksum_leaves_nothing(server, tmp_path):
    base, files = server
    with pytest.raises(GrscaleError, match="ml-1m/ratings.dat.*expected sha256 f{64}"):
        fetch_dataset(ml1m_spec(base, files, member_sha="f" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plain_file_download(server, tmp_path):
    base, files = server
    spec = replace(get_spec("beauty"), url=f"{base}/Beauty.txt", checksums=(
        Checksum(algorithm="sha256", digest=hashlib.sha256(files["/Beauty.txt"]).hexdigest()),))
    assert fetch_dataset(spec, tmp_path).read_bytes() == b"1 1 2 3\n"


def test_unreachable_server_message_names_url_file_and_folder(tmp_path):
    spec = replace(get_spec("ml-1m"), url="http://127.0.0.1:9/ml-1m.zip")
    with pytest.raises(GrscaleError) as info:
        fetch_dataset(spec, tmp_path, timeout=2)
    message = str(info.value)
    assert "http://127.0.0.1:9/ml-1m.zip" in message and "ratings.dat" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []


def test_synthetic_has_nothing_to_fetch(tmp_path):
    with pytest.raises(GrscaleError, match="generated"):
        fetch_dataset(get_spec("synthetic"), tmp_path)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_fetched_files_get_the_users_mode(server, tmp_path, umask_022):
    base, files = server
    extracted = fetch_dataset(ml1m_spec(base, files), tmp_path / "ml-1m")
    spec = replace(get_spec("beauty"), url=f"{base}/Beauty.txt", checksums=())
    downloaded = fetch_dataset(spec, tmp_path / "beauty")
    assert stat.S_IMODE(extracted.stat().st_mode) == stat.S_IMODE(downloaded.stat().st_mode) == 0o644
