"""One way to download a file: timeouts, retries that resume the partial file, and a hash check.

A download goes to ``<name>.part`` and is renamed to ``<name>`` only after its size and hash check out,
so a file under its real name is always complete; a ``.part`` left by a dropped connection is resumed
(HTTP Range) by the next attempt or the next run. Failures end in one `DownloadError` that names the URL
and what to do, never in a raw network traceback.

Files of the table (`helpers.data.download_table`) are cached below the Keras cache folder
(``$KERAS_HOME``, else ``~/.keras``), in Keras' own layout (``datasets/``, ``models/``), so a cache on a
persistent volume survives restarts. Two environment variables point `fetch` elsewhere:

- ``CAPTION_DOWNLOAD_MIRROR``: a base URL; each file is fetched from ``<mirror>/<name>`` instead of its
  public URL (a private mirror, an S3 website, a local server).
- ``CAPTION_DOWNLOAD_MANIFEST``: a JSON file ``{name: {"hash": "sha256:...", "size": N}}`` whose entries
  replace the table's hashes and sizes, for a mirror that serves different bytes (the rehearsal's
  stand-ins). Point it only at a file you trust: it decides what counts as the right content.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from helpers.data.download_table import TABLE, Download

DEFAULT_TIMEOUT = 60.0  # seconds to connect, and without a single byte arriving, before an attempt fails
DEFAULT_RETRIES = 5  # further attempts after the first; each resumes where the last one stopped
DEFAULT_BACKOFF = 2.0  # seconds before the first retry, doubling each time (capped at 60)
_CHUNK = 1 << 20  # bytes per read
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}  # HTTP answers worth another attempt
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A file could not be downloaded, or what arrived does not match its expected hash or size."""


class _Transient(Exception):
    """One attempt failed in a way another attempt may not (dropped connection, timeout, HTTP 5xx)."""


def cache_root() -> Path:
    """Keras' cache folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when that is unwritable)."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        user = os.path.expanduser("~")
        home = os.path.join(user if os.access(user, os.W_OK) else "/tmp", ".keras")
    return Path(home).expanduser()


def fetch(
    name: str,
    folder: str | Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> Path:
    """The local path of table file `name`, downloaded and checked first if needed (into `folder`)."""
    entry = _entry(name)
    if folder is None:
        if entry.folder is None:
            raise ValueError(f"{name}: the table gives no cache folder; pass one")
        folder = cache_root() / entry.folder
    mirror = os.environ.get("CAPTION_DOWNLOAD_MIRROR")
    url = f"{mirror.rstrip('/')}/{entry.name}" if mirror else entry.url
    expected, size = _expected(entry)
    target = Path(folder).expanduser() / Path(entry.name).name
    return download(url, target, expected, size, timeout=timeout, retries=retries, backoff=backoff)


def _entry(name: str) -> Download:
    if name not in TABLE:
        raise KeyError(f"{name!r} is not in the download table (helpers/data/download_table.py)")
    return TABLE[name]


def _expected(entry: Download) -> tuple[str | None, int | None]:
    """(hash, size) from the table, or from ``$CAPTION_DOWNLOAD_MANIFEST`` when it lists the file."""
    manifest = os.environ.get("CAPTION_DOWNLOAD_MANIFEST")
    if manifest:
        listed = json.loads(Path(manifest).read_text(encoding="utf-8")).get(entry.name)
        if listed is not None:
            return listed["hash"], listed.get("size")
    return entry.hash, entry.size


def download(
    url: str,
    target: str | Path,
    expected: str | None,
    size: int | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> Path:
    """Download `url` to `target` unless a checked copy is there; `expected` is "sha256:<hex>", "md5:<hex>"
    or None (then the sha256 of the first download is kept in ``<target>.sha256`` and checked later)."""
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        if target.is_file():
            problem = _mismatch(target, expected, size)
            if problem is None:
                return target
            print(f"{target}: {problem}; downloading it again")
            target.unlink()
        reason = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(backoff * 2 ** (attempt - 1), 60.0))
            try:
                _attempt(url, part, size, timeout)
                break
            except _Transient as err:
                reason = str(err)
        else:
            have = part.stat().st_size if part.is_file() else 0
            raise DownloadError(
                f"could not download {url} ({reason}, {retries + 1} attempts). Check the connection and run "
                f"again: the {have:,} bytes already in {part} are resumed. Or put the file at {target} "
                "yourself, or set CAPTION_DOWNLOAD_MIRROR to a server that has it."
            ) from None
        _accept(url, part, target, expected, size)
    return target


def _attempt(url: str, part: Path, size: int | None, timeout: float) -> None:
    """One request that appends to `part` from where it ends; raises _Transient when worth retrying."""
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have >= size:
        if have == size:
            return  # complete from an earlier attempt; the hash decides
        part.unlink()
        have = 0
    headers = {"User-Agent": "caption-workbench", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            return  # nothing left to send: the part is complete, or the hash check will say otherwise
        if err.code in _RETRY_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(
            f"could not download {url}: HTTP {err.code} {err.reason}. The file is not (or no longer) there: "
            f"check its URL in helpers/data/download_table.py, or put the file at {part.with_suffix('')}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(_reason(err)) from None
    with resp:
        start = _range_start(resp, have)
        total = _total_size(resp, start, size)
        with open(part, "ab" if start else "wb") as out:
            _copy(resp, out, start, total, Path(part).name[: -len(".part")])
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Transient(f"connection closed after {got:,} of {total:,} bytes")


def _range_start(resp: http.client.HTTPResponse, have: int) -> int:
    """Where the body starts in the file: `have` for a matching 206, 0 when the server sent it whole."""
    if not have or resp.status != 206:
        return 0
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != have:
        raise _Transient(f"server answered the range request with {resp.headers.get('Content-Range')!r}")
    return have


def _total_size(resp: http.client.HTTPResponse, start: int, size: int | None) -> int | None:
    """The whole file's size: from Content-Range, else Content-Length (+ resumed bytes), else the table."""
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if match and match.group(3) != "*":
        return int(match.group(3))
    length = resp.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else size


def _copy(resp, out, start: int, total: int | None, label: str) -> None:
    """Stream the body to `out` with a progress bar; a stall or drop becomes _Transient (bytes kept)."""
    with tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        try:
            while block := resp.read1(_CHUNK):  # whatever has arrived: a stall loses nothing
                out.write(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:  # timeouts, resets, IncompleteRead
            raise _Transient(_reason(err)) from None


def _reason(err: BaseException) -> str:
    """A short human reason for a network error."""
    if isinstance(err, TimeoutError):
        return "timed out: no data arrived"
    if isinstance(err, http.client.IncompleteRead):
        return "connection closed mid-file"
    if isinstance(err, urllib.error.URLError):
        return f"cannot connect: {err.reason}"
    return f"{err}" or type(err).__name__


def _accept(url: str, part: Path, target: Path, expected: str | None, size: int | None) -> None:
    """Rename `part` to `target` if its size and hash are right; otherwise delete it and say so."""
    problem = _mismatch(part, expected, size, sidecar=False)
    if problem is not None:
        part.unlink()
        raise DownloadError(
            f"{url}: {problem}; the download was deleted. The server sent other bytes than the published "
            "file (a changed file, an error page, a proxy?): run again later, or fetch it from elsewhere."
        )
    if expected is None:
        (target.with_name(target.name + ".sha256")).write_text(file_hash(part, "sha256") + "\n")
    os.replace(part, target)


def _mismatch(path: Path, expected: str | None, size: int | None, sidecar: bool = True) -> str | None:
    """Why `path` is not the expected file, or None when it is."""
    if size is not None and path.stat().st_size != size:
        return f"size {path.stat().st_size:,} bytes, expected {size:,}"
    if expected is None:
        pinned = path.with_name(path.name + ".sha256")
        if not sidecar or not pinned.is_file():
            return None
        expected = "sha256:" + pinned.read_text().strip()
    algorithm, _, digest = expected.partition(":")
    actual = file_hash(path, algorithm)
    return None if actual == digest.lower() else f"{algorithm} {actual}, expected {digest}"


def unpack(archive: str | Path, dest: str | Path, place: Callable[[str], str | None]) -> int:
    """Extract the zip members that `place` maps to a path below `dest` (None: skipped); returns how many.

    Each file is written under a temporary name and renamed when complete, and one already there with the
    member's size is kept: an extraction killed midway (COCO's train2014.zip holds 82,783 files) resumes
    where it stopped. The zip's CRC check runs on every member read; paths that would leave `dest` are
    refused.
    """
    dest, made = Path(dest), set()
    with zipfile.ZipFile(archive) as zf:
        members = [(m, place(m.filename)) for m in zf.infolist() if not m.is_dir()]
        members = [(m, rel) for m, rel in members if rel]
        for info, rel in tqdm(members, desc=f"extract {Path(archive).name}", unit="file", leave=False):
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise DownloadError(f"{archive}: member {info.filename!r} would be written outside {dest}")
            target = dest / rel
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            tmp = target.with_name(target.name + ".part")
            with zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            os.replace(tmp, target)
    return len(members)


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder's ``.fetch.lock``: two processes never write one file at once."""
    with open(target.parent / ".fetch.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
