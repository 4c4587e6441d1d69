"""Resumable, verified downloads and safe, atomic archive extraction (standard library only).

:func:`download` streams to ``<dest>.part``, continues a cut transfer with an HTTP ``Range``
request when the server honours it (and starts again when it does not), checks the MD5 and/or
SHA-256 and renames the finished file onto ``dest``: ``dest`` only ever holds a complete, verified
file, and a file that fails its checksum is deleted.

:func:`extract` unpacks zip and tar (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``)
archives into a temporary folder beside the destination and renames it into place once
complete, with a marker file that makes a second call a no-op. Members with absolute paths,
``..`` components or links are refused before anything is written.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from .audio import ChecksumError, DataError, DataNotFoundError, DownloadError

MARKER = ".fxlib-extracted.json"
CHUNK = 1 << 20  # bytes read per network call
USER_AGENT = "deepafx-fxlib (python urllib)"

Progress = Callable[[int, "int | None"], None]


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: any :mod:`hashlib` name, e.g. md5, sha256)."""
    h = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None = None, md5: str | None = None,
             resume: bool = True, timeout: float = 60.0, progress: Progress | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download and verifying its checksum.

    Args:
        url: http(s) URL.
        dest: the final file; its folder is created. If it already exists and matches the given
            checksums (or none is given) nothing is downloaded.
        sha256, md5: expected hex digests (either, both or neither).
        resume: continue ``<dest>.part`` from where it stopped; ``False`` starts afresh.
        timeout: seconds to wait for the connection and for each read.
        progress: called as ``progress(bytes_so_far, total_bytes_or_None)`` after each chunk.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP error, unreachable host, timeout or a cut connection (the partial
            file is kept so that a second call resumes).
        ChecksumError: the complete file has another checksum (nothing is kept). A resumed
            download that fails the check is fetched once more from the start first.
    """
    dest = Path(dest)
    expected = {k: v.lower() for k, v in (("sha256", sha256), ("md5", md5)) if v}
    if dest.is_file():
        if not _mismatches(dest, expected):
            return dest
        warnings.warn(f"{dest} exists but its checksum differs from the expected one; deleting it and "
                      "downloading it again", stacklevel=2)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)
    resumed = _fetch(url, part, timeout, progress)
    bad = _mismatches(part, expected)
    if bad and resumed:
        warnings.warn(f"{url}: the resumed download failed its checksum; downloading it again from the start",
                      stacklevel=2)
        part.unlink()
        _fetch(url, part, timeout, progress)
        bad = _mismatches(part, expected)
    if bad:
        part.unlink()
        raise ChecksumError(f"{url}: checksum mismatch ({'; '.join(bad)}); the download was deleted")
    part.replace(dest)
    return dest


def _mismatches(path: Path, expected: dict[str, str]) -> list[str]:
    """``["md5 expected X, got Y", ...]`` for each expected digest that ``path`` does not have."""
    out = []
    for algorithm, want in expected.items():
        got = file_digest(path, algorithm)
        if got != want:
            out.append(f"{algorithm} expected {want}, got {got}")
    return out


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None) -> bool:
    """Stream ``url`` into ``part``, continuing it when it exists; True if it was resumed."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the part is as long as (or longer than) the file: start again
            part.unlink()
            return _fetch(url, part, timeout, progress)
        raise DownloadError(f"{url}: HTTP error {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: cannot connect ({e.reason}); check the network connection") from e
    except TimeoutError as e:
        raise DownloadError(f"{url}: no answer within {timeout:g} s") from e
    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and _range_start(response) != offset:
            part.unlink()
            raise DownloadError(f"{url}: asked for bytes from {offset} but the server sent "
                                f"{response.headers.get('Content-Range')!r}; {part} was removed: run again")
        if not resumed:
            offset = 0  # a server that ignores Range sends the whole file: start again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        done = offset
        try:
            with part.open("ab" if resumed else "wb") as f:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except (http.client.HTTPException, OSError) as e:  # cut connection, timeout, reset
            raise DownloadError(f"{url}: the transfer stopped after {done} bytes ({e!r}); "
                                f"{part} is kept: run again to resume") from e
    if total is not None and done != total:
        raise DownloadError(f"{url}: the transfer stopped after {done} of {total} bytes; "
                            f"{part} is kept: run again to resume")
    return resumed


def _range_start(response: http.client.HTTPResponse) -> int | None:
    """The first byte offset of a 206 response's ``Content-Range`` (None when absent or malformed)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def extract(archive: str | Path, dest_dir: str | Path) -> Path:
    """Unpack a zip or tar archive into ``dest_dir``, safely, atomically and once.

    The archive is unpacked into ``<dest_dir>.extracting`` (removed first if an earlier run left
    it) and renamed to ``dest_dir`` when complete; ``dest_dir/.fxlib-extracted.json`` records
    the archive's name and size, so that a later call with the same archive returns at once.

    Args:
        archive: a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` file (recognised by content, not name).
        dest_dir: the folder to create; the archive's members appear inside it.

    Returns:
        ``dest_dir`` as a :class:`~pathlib.Path`.

    Raises:
        DataNotFoundError: ``archive`` does not exist.
        DataError: not a zip or tar archive, a corrupt archive, an unsafe member (absolute path,
            ``..``, link or device), or a ``dest_dir`` that exists but was not made from this archive.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise DataNotFoundError(f"archive {archive} does not exist")
    stamp = {"archive": archive.name, "size": archive.stat().st_size}
    if dest_dir.exists():
        if _read_marker(dest_dir / MARKER) == stamp:
            return dest_dir
        raise DataError(f"{dest_dir} exists but was not extracted from {archive} ({stamp['size']} bytes); "
                        "remove it or extract elsewhere")
    tmp = dest_dir.with_name(dest_dir.name + ".extracting")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp)
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive")
        (tmp / MARKER).write_text(json.dumps(stamp))
        tmp.rename(dest_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest_dir


def _read_marker(path: Path) -> dict | None:
    """The content of an extraction marker, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _check_member(archive: Path, name: str) -> None:
    """Refuse a member name that is absolute or climbs out of the destination."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts:
        raise DataError(f"{archive}: unsafe member {name!r} (absolute path or '..'); nothing was extracted")


def _extract_zip(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(archive, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{archive}: member {info.filename!r} is a symbolic link; "
                                    "fxlib extracts only files and folders")
            zf.extractall(into)
    except (zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{archive}: corrupt zip archive ({e})") from e


def _extract_tar(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(archive, m.name)
                if not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: member {m.name!r} is a link or special file; "
                                    "fxlib extracts only files and folders")
            tf.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError) as e:
        raise DataError(f"{archive}: corrupt tar archive ({e})") from e


def progress_logger(log: Callable[[str], None], url: str) -> Callable[[int, int | None], None]:
    """A download progress callback that logs every tenth of the file (or every 50 MB)."""
    shown = [-1]

    def report(done: int, total: int | None) -> None:
        mark = done * 10 // total if total else done // 50_000_000
        if mark != shown[0]:
            shown[0] = mark
            log(f"{url}: {done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else ""))
    return report
