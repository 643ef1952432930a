"""fal.ai queue API (submit, status, result, cancel) and output downloads, with a sync httpx client.

Submit goes to the full endpoint id; status, result and cancel live under owner/app only, so the URLs
fal returns on submit are stored and followed as they are (rebuilt only for a bare request id, see
:meth:`Fal.handle`). FAL_KEY comes only from the environment, goes only to the queue's own origin
(never to output file URLs) and never appears in a message, a repr or the log.

Retries are fal_client's (services.md §1.7): up to 10 tries on connection errors and timeouts, on
408/409/429, and on 502/503/504 only from fal's ingress (no `x-fal-request-id`, "nginx" in the body),
never on a 504 with `X-Fal-Request-Timeout-Type`; waits min(0.1 * 2**(n-1), 30) × U(0.5, 1.5),
or what a `Retry-After` header asks (fal_client ignores it; lorad honours it, up to
`max_retry_after`); anything else is raised at once. Like fal_client, a submit whose answer was
lost is sent again, and fal has no idempotency key, so that request may run (and bill) twice:
lorad does not do that. A submit is retried only when it certainly did not reach fal (the
connection was refused or could not be made, or fal answered with a retryable status); a lost
answer is :class:`FalSubmitUnknown`, and the caller decides.

Outputs are files on fal's CDN, fetched without the key; a request sent with `sync_mode: true`
(flux-lora) gets its media back inline as a `data:` URI instead, which :meth:`Fal.download` decodes
under the same rules (content type, size limit, a name lorad chooses).

Uploads (services.md §1.8, the small-file path only): a storage token from fal's REST API (the key goes
there as well, and nowhere but there and the queue), then the raw bytes to the CDN the token names,
authorized by that token, never by the key. The token is cached until shortly before it expires.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import os
import random
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import httpx

from lorad.core import files, http, secrets
from lorad.core.errors import LoradError, TransientError
from lorad.generation.services import (
    SERVICES,
    CredentialsMissing,
    Request,
    RequestFailed,
    RequestStatus,
    ResultGone,
    ServiceError,
    SubmitUnknown,
)

QUEUE_URL = "https://queue.fal.run"
KEY_ENV = "FAL_KEY"
QUEUE_URL_ENV = "FAL_QUEUE_URL"  # a full base URL, e.g. a test double's http://127.0.0.1:port
QUEUE_HOST_ENV, RUN_HOST_ENV = "FAL_QUEUE_RUN_HOST", "FAL_RUN_HOST"  # fal_client's host names (https)
REST_URL, REST_URL_ENV = "https://rest.fal.ai", "FAL_REST_URL"  # storage tokens (a full base URL)
CDN_URL = "https://v3.fal.media"  # where uploads go when the token answer names no base_url
STORAGE_TYPE = "fal-cdn-v3"
UPLOAD_LIMIT = 100 * 2**20  # larger files need fal's multipart upload, which lorad does not do
TOKEN_MARGIN = 60.0  # s: fetch a new storage token this long before the cached one expires
STATES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
CANCEL_OUTCOMES = ("OK", "CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND")
APP_NAMESPACES = ("workflows", "comfy")
RETRY_CODES = (408, 409, 429)
# transport errors raised before any byte of the request left: safe to send again
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
INGRESS_CODES = (502, 503, 504)
MAX_ATTEMPTS, BASE_DELAY, MAX_DELAY = 10, 0.1, 30.0
EXTENSIONS = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "image/png": ".png",
              "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}
# RFC 2397: data:[<mediatype>][;base64],<data>; a media type with no type means text/plain
_DATA_URI = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*?)(?P<base64>;base64)?,",
                       re.IGNORECASE)
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOKEN = re.compile(r"^[!-~]+$")  # printable ASCII, no spaces: safe in a header
_TOKEN_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

log = logging.getLogger(__name__)


class FalError(ServiceError):
    """fal said no in a way retrying will not fix; the message says what to do."""


class FalAuthError(FalError, CredentialsMissing):
    """FAL_KEY missing, invalid (401) or not allowed (403)."""


class FalValidationError(FalError):
    """HTTP 422: `errors` holds (field, message) pairs, e.g. ("num_frames", "ensure ... <= 161")."""

    def __init__(self, message: str, errors: list[tuple[str, str]]):
        super().__init__(message)
        self.errors = errors


class FalGone(FalError, ResultGone):
    """fal no longer knows the request or its result (expired, or a wrong id)."""


class FalRequestFailed(FalError, RequestFailed):
    """The request ran and failed (or was cancelled): COMPLETED with an `error`."""

    def __init__(self, message: str, error_type: str | None = None):
        super().__init__(message)
        self.error_type = error_type


class FalDownloadError(FalError):
    """An output file is too large, of the wrong type, or at a URL lorad will not fetch."""


class FalSubmitUnknown(FalError, SubmitUnknown):
    """The submit went out and its answer did not come back: fal may have accepted it."""


class FalTransient(TransientError):
    """fal unreachable, rate limited or failing: the daemon retries the job later."""


@dataclass(frozen=True)
class Submitted:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    endpoint_id: str | None = None


@dataclass(frozen=True)
class Status:
    state: str  # IN_QUEUE, IN_PROGRESS or COMPLETED (also for failed and cancelled requests)
    queue_position: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state == "COMPLETED"

    @property
    def failed(self) -> bool:
        return self.done and bool(self.error)


def should_retry(response: httpx.Response) -> bool:
    """fal_client's rule for answers (connection errors and timeouts are always retried)."""
    status = response.status_code
    if status == 504 and response.headers.get("x-fal-request-timeout-type"):
        return False  # a timeout the caller asked for
    if status in INGRESS_CODES:
        return "x-fal-request-id" not in response.headers and "nginx" in response.text
    return status in RETRY_CODES


def safe_name(stem: str, content_type: str) -> str:
    """A file name from the caller's stem and the content type; never from anything fal sent."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).lstrip("-_")[:100] or "output"
    return clean + EXTENSIONS.get(content_type, ".bin")


def decode_data_uri(url: str, max_bytes: int) -> tuple[str, bytes]:
    """(content type, bytes) of a `data:` URI, refused over `max_bytes` before it is decoded."""
    shown = url[:40] + "..."
    match = _DATA_URI.match(url)
    if match is None:
        raise FalDownloadError(f"fal output {shown} is not a well-formed data: URI")
    kind = (match["type"] or "text/plain").strip().lower()
    payload = url[match.end():]
    if match["base64"]:
        size = len(payload.rstrip("=")) * 3 // 4  # 3 bytes in 4 characters: exact if valid
        if size > max_bytes:  # refused before it is decoded
            raise FalDownloadError(f"fal output {shown} is {size} bytes, over the {max_bytes}-byte "
                                   f"limit")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise FalDownloadError(f"fal output {shown} is not valid base64") from None
    else:  # percent-encoded: never longer than the text
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise FalDownloadError(f"fal output {shown} is {len(data)} bytes, over the {max_bytes}-byte "
                               f"limit")
    return kind, data


def app_path(endpoint_id: str) -> str:
    """owner/app (or namespace/owner/app) of an endpoint id: where its requests live."""
    parts = _check_endpoint(endpoint_id).split("/")
    return "/".join(parts[:3] if parts[0] in APP_NAMESPACES else parts[:2])


def upload_name(path: Path) -> str:
    """The file name sent in X-Fal-File-Name: the basename, cut down to characters safe in a header."""
    path = Path(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-")[:150] or "upload"
    suffix = re.sub(r"[^A-Za-z0-9]+", "", path.suffix)[:10]
    return f"{stem}.{suffix}" if suffix else stem


def _origin(url: str) -> tuple[str, str, int | None]:
    there = httpx.URL(url)
    return there.scheme, there.host, there.port


def _expiry(value: Any) -> float | None:
    """Seconds since the epoch of an ISO datetime (UTC when it names no zone); None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _check_type(shown: str, kind: str, allowed_types: tuple[str, ...]) -> None:
    if not any(kind.startswith(t) for t in allowed_types):
        raise FalDownloadError(f"fal output {shown} is {kind or 'untyped'}, not {' or '.join(allowed_types)}")


def _write_output(dest: Path, stem: str, kind: str, chunks: Iterable[bytes], shown: str,
                  max_bytes: int) -> Path:
    """`chunks` to `dest/<stem><ext>` through a partial file: no partial output is left behind."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / safe_name(stem, kind)
    if target.resolve().parent != dest.resolve():
        raise FalDownloadError(f"refusing to write outside {dest}")
    fd, part = tempfile.mkstemp(dir=dest, prefix=files.PART_PREFIX + "fal-")
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FalDownloadError(f"fal output {shown} is over the {max_bytes}-byte limit; "
                                           f"stopped downloading")
                out.write(chunk)
        os.replace(part, target)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True, repr=False)
class _StorageToken:
    header: str  # "<token_type> <token>"
    cdn_url: str
    expires: float | None  # epoch seconds; None: use once, do not cache


def _check_endpoint(endpoint_id: str) -> str:
    parts = endpoint_id.strip("/").split("/")
    if len(parts) < 2 or not all(_SEGMENT.match(p) and ".." not in p for p in parts):
        raise FalError(f"bad fal endpoint id {endpoint_id!r}: expected owner/app[/path], "
                       f"e.g. fal-ai/wan/v2.2-a14b/text-to-video/lora")
    return "/".join(parts)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"detail": body}


def _detail(response: httpx.Response) -> str:
    detail = _body(response).get("detail")
    return str(detail)[:300] if detail is not None else " ".join(response.text.split())[:200]


def _field_errors(response: httpx.Response) -> list[tuple[str, str]]:
    """(field, message) pairs of a 422's `detail` list; loc ["body", "loras", 0, "scale"] -> loras.0.scale."""
    items = _body(response).get("detail")
    if not isinstance(items, list):
        return [("", _detail(response))]
    errors = []
    for item in items:
        item = item if isinstance(item, dict) else {"msg": item}
        loc = [str(p) for p in item.get("loc") or ()]
        msg, got = str(item.get("msg") or item.get("type") or "invalid"), item.get("input")
        if isinstance(got, (int, float, str)) and len(str(got)) <= 40:
            msg += f" (got {got!r})"
        errors.append((".".join(loc[1:] if loc[:1] == ["body"] else loc), msg))
    return errors


_SSL: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client of the process: loading the CA bundle costs ~75 ms
    of CPU, and the daemon opens a client per generation (bench/draft_captions.py measured it)."""
    global _SSL
    with _SSL_LOCK:
        if _SSL is None:
            _SSL = ssl.create_default_context(cafile=certifi.where())
        return _SSL


class Fal:
    """A client of fal's queue for the key in FAL_KEY. Use as a context manager or call :meth:`close`.

    The queue base URL is `queue_url`, else `base_url` (a test double serving everything), else
    $FAL_QUEUE_URL, else https://$FAL_QUEUE_RUN_HOST, else https://queue.$FAL_RUN_HOST, else
    https://queue.fal.run. The REST base URL (storage tokens for :meth:`upload`) is `rest_url`, else
    $FAL_REST_URL, else the queue base URL when that came from `queue_url`, `base_url` or $FAL_QUEUE_URL
    and is not https://queue.fal.run (one test double serves everything), else https://rest.fal.ai.
    """

    def __init__(self, base_url: str | None = None, *, queue_url: str | None = None,
                 rest_url: str | None = None, timeout: float = 120.0, max_attempts: int = MAX_ATTEMPTS,
                 max_retry_after: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        key = secrets.get(KEY_ENV)
        if key is None:
            raise FalAuthError(f"{KEY_ENV} is not set: create a key at https://fal.ai/dashboard/keys "
                               f"and export {KEY_ENV}")
        self._key = key
        env = os.environ.get
        full = queue_url or base_url or env(QUEUE_URL_ENV)  # a whole base URL, perhaps a double's
        url = (full or (env(QUEUE_HOST_ENV) and f"https://{env(QUEUE_HOST_ENV)}")
               or (env(RUN_HOST_ENV) and f"https://queue.{env(RUN_HOST_ENV)}") or QUEUE_URL)
        self.queue_url = url.rstrip("/")
        same = full and self.queue_url != QUEUE_URL
        self.rest_url = (rest_url or env(REST_URL_ENV) or (self.queue_url if same else REST_URL)).rstrip("/")
        self._tokens: set[str] = set()  # every storage token seen, scrubbed from messages like the key
        self._token: _StorageToken | None = None
        self._token_lock = threading.Lock()
        self.max_attempts = max(1, max_attempts)
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._random = random.Random()
        limits = httpx.Timeout(timeout, connect=min(timeout, 30))
        self._http = httpx.Client(transport=transport, timeout=limits, verify=_ssl_context(),
                                  headers={"Accept": "application/json", "User-Agent": "lorad"})

    def __repr__(self) -> str:
        return f"Fal({self.queue_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Fal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queue ----------------------------------------------------------------------------------

    def submit(self, endpoint_id: str, arguments: dict[str, Any]) -> Submitted:
        """Queue a request; the body is the model input itself. Store the result right away."""
        endpoint_id = _check_endpoint(endpoint_id)
        response = self._send("POST", f"{self.queue_url}/{endpoint_id}", json=arguments,
                              what=f"submit to {endpoint_id}", once=True)
        body = self._json(response)
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise FalError(f"fal accepted a request to {endpoint_id} but sent no request_id")
        rebuilt = self.handle(endpoint_id, request_id)  # for URLs fal left out
        urls = {k: body[k] if isinstance(body.get(k), str) else getattr(rebuilt, k)
                for k in ("status_url", "response_url", "cancel_url")}
        try:
            return self._checked(Submitted(request_id, endpoint_id=endpoint_id, **urls))
        except FalError as exc:
            # fal accepted (and will bill) the request: follow it on our own queue host
            # rather than lose it; the key still goes nowhere else.
            log.warning("%s; following it at %s instead", exc, rebuilt.status_url)
            return rebuilt

    def handle(self, endpoint_id: str, request_id: str) -> Submitted:
        """URLs of a request known only by id, under owner/app as fal_client builds them."""
        if not _SEGMENT.match(request_id or ""):
            raise FalError(f"bad fal request id {request_id!r}")
        base = f"{self.queue_url}/{app_path(endpoint_id)}/requests/{request_id}"
        return Submitted(request_id, f"{base}/status", base, f"{base}/cancel", endpoint_id)

    def status(self, request: Submitted | Mapping[str, Any], logs: bool = False) -> Status:
        """202 while IN_QUEUE or IN_PROGRESS, 200 once COMPLETED; any 2xx is read the same way."""
        sub = self._submitted(request)
        response = self._send("GET", sub.status_url, params={"logs": "1"} if logs else None,
                              what=f"status of {sub.request_id}", request_id=sub.request_id)
        body = self._json(response)
        state = body.get("status")
        if state not in STATES:
            raise FalError(f"fal answered an unknown status {str(state)[:40]!r} for {sub.request_id}")
        position = body.get("queue_position")
        return Status(state, int(position) if isinstance(position, (int, float)) else None,
                      list(body.get("logs") or []), body.get("error") or None, body.get("error_type"),
                      dict(body.get("metrics") or {}), body)

    def result(self, request: Submitted | Mapping[str, Any]) -> dict[str, Any]:
        """The model's output. A failed request answers with the model's error: FalRequestFailed."""
        sub = self._submitted(request)
        response = self._send("GET", sub.response_url, what=f"result of {sub.request_id}",
                              request_id=sub.request_id, failed_is_final=True)
        return self._json(response)

    def cancel(self, request: Submitted | Mapping[str, Any]) -> str:
        """CANCELLATION_REQUESTED (or OK), ALREADY_COMPLETED or NOT_FOUND; read the status afterwards:
        a request already running is only asked to stop."""
        sub = self._submitted(request)
        response = self._send("PUT", sub.cancel_url, what=f"cancel of {sub.request_id}",
                              request_id=sub.request_id, accept=(400, 404))
        outcome = _body(response).get("status")
        if outcome in CANCEL_OUTCOMES:
            return str(outcome)
        if response.status_code == 404:
            return "NOT_FOUND"
        if response.status_code == 400:
            raise FalError(f"fal refused to cancel {sub.request_id}: {self._scrub(_detail(response))}")
        return "CANCELLATION_REQUESTED"

    def wait(self, request: Submitted | Mapping[str, Any], *, timeout: float | None = None,
             interval: float = 2.0, max_interval: float = 10.0, logs: bool = False,
             on_status: Callable[[Status], None] | None = None) -> dict[str, Any]:
        """Poll (every `interval` s, growing ×1.5 up to `max_interval`) until COMPLETED, then fetch the
        result at once: fal keeps it 1 hour, only 6 minutes when it is 10 KB or more."""
        sub = self._submitted(request)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = interval
        while True:
            status = self.status(sub, logs=logs)
            if on_status is not None:
                on_status(status)
            if status.failed:
                raise FalRequestFailed(f"fal request {sub.request_id} failed: "
                                       f"{self._scrub(str(status.error))[:300]}", status.error_type)
            if status.done:
                return self.result(sub)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise FalTransient(f"fal request {sub.request_id} still {status.state} after {timeout:g} s")
            self._sleep(delay)
            delay = min(max_interval, delay * 1.5)

    # -- files ----------------------------------------------------------------------------------

    def download(self, url: str, dest_dir: Path, *, max_bytes: int, stem: str = "output",
                 allowed_types: tuple[str, ...] = ("video/", "image/")) -> Path:
        """Stream an output file to `dest_dir/<stem><ext>`, the extension fixed by its content type.
        The key is not sent; the file name fal suggests is never used. A `data:` URI (what
        `sync_mode: true` answers) is decoded instead, nothing fetched."""
        if url[:5].lower() == "data:":
            kind, data = decode_data_uri(url, max_bytes)
            _check_type(url[:40] + "...", kind, allowed_types)
            return _write_output(Path(dest_dir), stem, kind, [data], url[:40] + "...", max_bytes)
        if httpx.URL(url).scheme not in ("http", "https"):
            raise FalDownloadError(f"refusing to download {url[:100]!r}: not an http(s) or data: URL")
        response = self._send("GET", url, what=f"download of {url[:100]}", auth=False, stream=True)
        try:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            _check_type(url[:100], kind, allowed_types)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FalDownloadError(f"fal output {url[:100]} is {int(declared)} bytes, over the "
                                       f"{max_bytes}-byte limit")
            return _write_output(Path(dest_dir), stem, kind, response.iter_bytes(1 << 16), url[:100],
                                 max_bytes)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise FalTransient(f"download of {url[:100]} broke off ({exc.__class__.__name__})") from None
        finally:
            response.close()

    def upload(self, path: Path) -> str:
        """Put a local file (at most 100 MiB) on fal's CDN; its public URL, e.g. for `image_url`.

        The content type comes from the file's suffix. The key goes only to the REST API for a storage
        token (cached until shortly before it expires); the CDN gets that token, never the key."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise FalError(f"cannot upload {path} to fal: not a regular file")
        except OSError as exc:
            raise FalError(f"cannot upload {path} to fal: {exc.strerror or exc.__class__.__name__}") from None
        if size > UPLOAD_LIMIT:
            raise FalError(f"cannot upload {path} to fal: it is {size} bytes, over the {UPLOAD_LIMIT}-byte "
                           f"(100 MiB) limit of a single upload; lorad does not do fal's multipart upload")
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise FalError(f"cannot read {path} to upload it to fal: {reason}") from None
        if len(data) > UPLOAD_LIMIT:  # grew since stat()
            raise FalError(f"cannot upload {path} to fal: over the {UPLOAD_LIMIT}-byte (100 MiB) limit")
        name = upload_name(path)
        headers = {"Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                   "X-Fal-File-Name": name}
        what = f"upload of {name}"
        for fresh in (False, True):
            token = self._storage_token(fresh)
            response = self._send("POST", f"{token.cdn_url}/files/upload", what=what, content=data,
                                  headers=headers, auth=False, token=token.header, accept=(401, 403))
            if response.status_code not in (401, 403):
                break
            with self._token_lock:  # expired or revoked early: drop it, try once with a new one
                if self._token is token:
                    self._token = None
        else:
            raise FalError(f"fal's CDN refused a fresh storage token for the {what} (fal answered "
                           f"{response.status_code}: {self._scrub(_detail(response))})")
        url = self._json(response).get("access_url")
        there = httpx.URL(url) if isinstance(url, str) else None
        if there is None or there.scheme not in ("http", "https") or not there.host:
            shown = self._scrub(str(url))[:100] if url is not None else "none"
            raise FalError(f"fal stored {name} but answered no usable access_url ({shown})")
        log.info("uploaded %s (%d bytes) to fal: %s", name, len(data), url)
        return str(url)

    def _storage_token(self, fresh: bool = False) -> _StorageToken:
        """A CDN storage token: the cached one while it is good for TOKEN_MARGIN s more, else a new one."""
        with self._token_lock:
            cached = self._token
            if not fresh and cached is not None and cached.expires is not None \
                    and time.time() < cached.expires - TOKEN_MARGIN:
                return cached
            response = self._send("POST", f"{self.rest_url}/storage/auth/token", json={},
                                  params={"storage_type": STORAGE_TYPE}, what="storage token request")
            body = self._json(response)
            token, kind = body.get("token"), body.get("token_type") or "Bearer"
            if isinstance(token, str) and token:
                self._tokens.add(token)
            if not isinstance(token, str) or not _TOKEN.match(token):
                raise FalError("fal answered the storage token request without a usable token")
            if not isinstance(kind, str) or not _TOKEN_TYPE.match(kind):
                raise FalError(f"fal answered the storage token request with an odd token_type "
                               f"{self._scrub(str(kind))[:40]!r}")
            cdn = body.get("base_url") or CDN_URL
            there = httpx.URL(cdn) if isinstance(cdn, str) else None
            if there is None or there.scheme not in ("http", "https") or not there.host:
                raise FalError(f"fal answered the storage token request with an unusable base_url "
                               f"{self._scrub(str(cdn))[:100]!r}")
            if there.scheme == "http" and httpx.URL(self.rest_url).scheme == "https":
                raise FalError(f"fal's storage token names a plain-http CDN ({there.host}); refusing to send "
                               f"the token there unencrypted")
            stored = _StorageToken(f"{kind} {token}", str(cdn).rstrip("/"), _expiry(body.get("expires_at")))
            self._token = stored if stored.expires is not None else None
            return stored

    # -- HTTP -----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, what: str, json: Any = None, params: Any = None,
              content: bytes | None = None, headers: Mapping[str, str] | None = None, auth: bool = True,
              token: str | None = None, stream: bool = False, request_id: str | None = None,
              accept: tuple[int, ...] = (), failed_is_final: bool = False,
              once: bool = False) -> httpx.Response:
        """`auth`: send the key (to the queue or REST origin only); else `token`, a whole Authorization
        value (the CDN's storage token), or nothing. Redirects are followed only without either.
        `once`: a request that must not be repeated after it may have arrived (a submit)."""
        if auth:
            self._check_key_origin(url, what)
        sent = dict(headers or {})
        if auth or token is not None:
            sent["Authorization"] = f"Key {self._key}" if auth else str(token)
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request(method, url, json=json, params=params, content=content,
                                               headers=sent)
            try:
                response = self._http.send(request, stream=stream,
                                           follow_redirects="Authorization" not in sent)
            except httpx.TransportError as exc:
                name = exc.__class__.__name__
                reason = self._scrub(f"{name}: {exc}" if str(exc) else name)
                if once and not isinstance(exc, NOT_SENT):
                    raise FalSubmitUnknown(
                        f"the {what} was sent but its answer was lost ({reason}): fal may have "
                        "accepted it (and will bill it), so lorad did not send it again") from None
                if attempt >= self.max_attempts:
                    raise FalTransient(f"fal unreachable for {what} after {attempt} tries "
                                       f"({reason})") from None
                self._wait(method, url, reason, attempt)
                continue
            if response.is_success or response.status_code in accept:
                return response
            response.read()
            response.close()
            if should_retry(response):
                if attempt >= self.max_attempts:
                    raise FalTransient(f"fal answered {response.status_code} to {what} {attempt} times "
                                       f"({self._scrub(_detail(response))})")
                self._wait(method, url, f"HTTP {response.status_code}", attempt,
                           asked=http.retry_after(response.headers))
                continue
            raise self._error(response, what, request_id, failed_is_final, auth, token is not None)

    def _wait(self, method: str, url: str, reason: str, attempt: int,
              asked: float | None = None) -> None:
        """Back off; a Retry-After the service sent wins, capped at `max_retry_after`."""
        if asked is not None:
            delay = min(asked, self.max_retry_after)
        else:
            delay = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)) * self._random.uniform(0.5, 1.5)
            delay = min(delay, MAX_DELAY)
        log.warning("fal %s %s: %s; retrying in %.2f s (try %d of %d)", method, httpx.URL(url).path,
                    reason, delay, attempt + 1, self.max_attempts)
        self._sleep(delay)

    def _error(self, response: httpx.Response, what: str, request_id: str | None,
               failed_is_final: bool, auth: bool, token: bool = False) -> LoradError:
        status = response.status_code
        detail = self._scrub(_detail(response))
        said = f"fal answered {status}: {detail}" if detail else f"fal answered {status}"
        if token and status in (401, 403):
            return FalError(f"fal's CDN refused the storage token for the {what} ({said})")
        if status in (404, 410) and not auth and not token:
            return FalGone(f"the fal output is gone: {what} ({said})")
        if status in (401, 403) and auth:
            extra = ", or may not use this endpoint" if status == 403 else ""
            return FalAuthError(f"{KEY_ENV} is missing or invalid{extra} ({said}); create a key at "
                                f"https://fal.ai/dashboard/keys and export {KEY_ENV}")
        if status == 422:
            errors = [(name, self._scrub(msg)) for name, msg in _field_errors(response)]
            listed = "; ".join(f"{name}: {msg}" if name else msg for name, msg in errors)
            return FalValidationError(f"fal rejected the input ({what}): {listed}", errors)
        if status in (404, 410) and request_id is not None:
            return FalGone(f"fal no longer has request {request_id} ({said}); results are kept 1 hour "
                           f"after completion, 6 minutes when 10 KB or larger")
        kind = response.headers.get("x-fal-error-type") or _body(response).get("error_type")
        if failed_is_final and (kind or status < 500):  # the model's own error, as fal relays it
            return FalRequestFailed(f"fal request {request_id} failed ({said})", kind)
        if status >= 500:
            return FalTransient(f"fal failed on {what} ({said})")
        return FalError(f"fal refused {what} ({said})")

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # a proxy's page, say: worth a retry later
            raise FalTransient(f"fal answered {response.request.method} {response.request.url.path} with "
                               f"something that is not a JSON object "
                               f"({response.headers.get('content-type', 'no content type')})")
        return body

    def _submitted(self, request: Submitted | Mapping[str, Any]) -> Submitted:
        if isinstance(request, Submitted):
            return self._checked(request)
        rid, endpoint = request.get("request_id"), request.get("endpoint_id")
        if all(isinstance(request.get(k), str) for k in ("status_url", "response_url", "cancel_url")):
            return self._checked(Submitted(str(rid or ""), request["status_url"], request["response_url"],
                                           request["cancel_url"], endpoint))
        if isinstance(rid, str) and isinstance(endpoint, str):
            return self.handle(endpoint, rid)
        raise FalError("a fal request needs its status/response/cancel URLs, or endpoint_id and request_id")

    def _checked(self, sub: Submitted) -> Submitted:
        """The key goes to fal's queue only: refuse URLs on another origin."""
        home = httpx.URL(self.queue_url)
        for url in (sub.status_url, sub.response_url, sub.cancel_url):
            there = httpx.URL(url)
            if (there.scheme, there.host, there.port) != (home.scheme, home.host, home.port):
                raise FalError(f"fal request {sub.request_id} points at {there.scheme}://{there.host}, not "
                               f"the queue at {self.queue_url}; refusing to send {KEY_ENV} there")
        return sub

    def _check_key_origin(self, url: str, what: str) -> None:
        """The key goes to fal's queue and REST API only."""
        there = _origin(url)
        if there not in (_origin(self.queue_url), _origin(self.rest_url)):
            raise FalError(f"refusing to send {KEY_ENV} to {there[0]}://{there[1]} for the {what}: it goes "
                           f"only to the queue at {self.queue_url} and the REST API at {self.rest_url}")

    def _scrub(self, text: str) -> str:
        for secret in (self._key, *self._tokens):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


# -- the GenerationService implementation ------------------------------------------------------

_STATES = {"IN_QUEUE": "queued", "IN_PROGRESS": "running", "COMPLETED": "done"}


class FalSession:
    """A :class:`Fal` client seen through the GenerationService interface. The handle is the
    request id, the endpoint and the three URLs fal returned, followed as they are."""

    def __init__(self, client: Fal) -> None:
        self.client = client

    def submit(self, endpoint: str, arguments: dict[str, Any]) -> Request:
        sub = self.client.submit(endpoint, arguments)
        return Request(sub.request_id, {"request_id": sub.request_id, "endpoint_id": endpoint,
                                        "status_url": sub.status_url,
                                        "response_url": sub.response_url,
                                        "cancel_url": sub.cancel_url})

    def status(self, handle: dict[str, Any]) -> RequestStatus:
        s = self.client.status(handle)
        return RequestStatus(_STATES[s.state], s.queue_position, s.error, s.error_type,
                             s.metrics)

    def result(self, handle: dict[str, Any]) -> dict[str, Any]:
        return self.client.result(handle)

    def cancel(self, handle: dict[str, Any]) -> str:
        return self.client.cancel(handle)

    def upload(self, path: Path) -> str:
        return self.client.upload(path)

    def download(self, url: str, dest_dir: Path, *, max_bytes: int, stem: str) -> Path:
        return self.client.download(url, dest_dir, max_bytes=max_bytes, stem=stem)

    def close(self) -> None:
        self.client.close()


class FalService:
    name = "fal"
    title = "fal.ai's queue"
    secrets = (KEY_ENV,)

    def open(self, settings: dict[str, Any], workspace: Any = None) -> FalSession:
        return FalSession(Fal(queue_url=settings.get("queue_url") or None,
                              timeout=settings.get("request_timeout_seconds", 120.0),
                              max_retry_after=settings.get("retry_after_max_seconds", 60.0)))

    def output_url(self, result: dict[str, Any]) -> str:
        """The file a result points at: a video, else the first image."""
        video = result.get("video")
        if isinstance(video, dict) and isinstance(video.get("url"), str):
            return video["url"]
        images = result.get("images")
        if isinstance(images, list) and images and isinstance(images[0], dict) \
                and isinstance(images[0].get("url"), str):
            return images[0]["url"]
        image = result.get("image")
        if isinstance(image, dict) and isinstance(image.get("url"), str):
            return image["url"]
        raise FalError("fal's result has no video or image URL "
                       f"(keys: {', '.join(sorted(result))})")

    def output_text(self, result: dict[str, Any]) -> tuple[str, float | None]:
        """The caption of a text endpoint: OpenRouter's `output` (with `usage.cost`, the dollars
        charged), Marlin's `text` (its scene and events together; no usage): fal-js
        endpoints.ts `RouterVisionOutput`/`VideoOutput` and `MarlinOutput`."""
        error = result.get("error")
        if isinstance(error, str) and error:
            raise FalError(f"fal answered with an error: {error}")
        for key in ("output", "text"):
            text = result.get(key)
            if isinstance(text, str):
                usage = result.get("usage")
                cost = usage.get("cost") if isinstance(usage, dict) else None
                return text, float(cost) if isinstance(cost, (int, float)) else None
        raise FalError(f"fal's result has no text (keys: {', '.join(sorted(result))})")


SERVICES.register(FalService.name, FalService())
