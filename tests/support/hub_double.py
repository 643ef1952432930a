"""A loopback HTTP double of the Hugging Face Hub's repo, commit and download API, as huggingface_hub 2.4
speaks it (checked against its source; the Hub itself is not contacted).

    with hub_double() as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)

Every /api route needs `authorization: Bearer <token>`, else 401 {"error": "Invalid credentials in
Authorization header"}, also as X-Error-Message: the client uses it to tell a bad token from a hidden repo.
  POST /api/repos/create                         {"name", "organization" (null: the user "tester"),
                                                 "visibility" | "private", "type"?} -> 200 {"url", "name"};
                                                 409 {"error", "url"} if it exists (exist_ok reads that url).
  GET  /api/whoami-v2                            {"name": "tester", "type": "user"}
  POST /api/validate-yaml                        {"content", "repoType"}: the client's check of a README.md
                                                 before committing it. 200 {"errors": [], "warnings"}; a YAML
                                                 front matter that is not a YAML mapping: 400 {"errors"}.
  GET  /api/{kind}s/{ns}/{name}[/revision/{rev}] {"id", "private", "sha", "siblings": [{"rfilename"}], ...};
                                                 with a README.md front matter also "cardData" and, as set
                                                 there, "pipeline_tag" and "library_name" (what the Hub
                                                 infers when they are not set is not imitated).
  GET  /api/{kind}s/{ns}/{name}/tree/{rev}[/{path}]?recursive=  [{"type": "file"|"directory", "path", "oid",
                                                 "size"}], one page (list_repo_files works).
  POST /api/{kind}s/{ns}/{name}/preupload/{rev}  {"files": [{"path", "uploadMode": "regular",
                                                 "shouldIgnore": false}]} for every file: no LFS, no oid.
  POST /api/{kind}s/{ns}/{name}/commit/{rev}     application/x-ndjson: a header line, then file /
                                                 deletedFile / deletedFolder lines -> {"commitUrl",
                                                 "commitOid", "success": true}. lfsFile lines: 400.
Downloads, anonymous for public repos (a present but wrong token is still a 401):
  GET|HEAD /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}   the bytes, with ETag (the git blob sha1),
                                                 X-Repo-Commit and Content-Length: hf_hub_download needs them.
Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound): huggingface_hub maps
them to its exception classes. A new repo has an empty `main`; `initial_commit=True` starts it as the Hub
does, with an "initial commit" of .gitattributes (then `files` and `commits` show that too).
Anything else: 404, listed in `unhandled` (as is a crash of the double, answered 500). `requests` logs
(method, path, status, had_auth) of every request; :meth:`fail_next` injects errors.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import loopback
import yaml  # a dependency of huggingface_hub

USER = "tester"
BAD_TOKEN = "Invalid credentials in Authorization header"
NO_LOGIN = "Invalid username or password."  # what the Hub says for a private repo asked anonymously
KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n".encode() for pattern in (
    "*.bin", "*.ckpt", "*.h5", "*.onnx", "*.pt", "*.pth", "*.safetensors", "*.zip", "*tfevents*"))

FRONT_MATTER = re.compile(r"^\s*---[\r\n]+([\S\s]*?)[\r\n]+---(\r\n|\n|$)")  # as huggingface_hub's repocard
Answer = tuple[int, Any, dict[str, str]]  # status, JSON payload (bytes: raw), headers


def blob_oid(data: bytes) -> str:
    """The git blob sha1, which the Hub sends as the ETag of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Commit:
    oid: str
    summary: str
    description: str
    revision: str
    paths: list[str]  # added or replaced
    deleted: list[str]
    parent: str | None
    files: dict[str, bytes] = field(repr=False)  # the whole tree after this commit
    date: str = field(default_factory=_now)


@dataclass
class FakeRepo:
    repo_id: str
    type: str = "model"
    private: bool = False
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # name -> head commit oid
    created: str = field(default_factory=_now)

    def head(self, revision: str = "main") -> Commit | None:
        """The commit a revision names: a branch, or a full commit oid."""
        oid = self.branches.get(revision, revision)
        return next((c for c in reversed(self.commits) if c.oid == oid), None)

    def knows(self, revision: str) -> bool:
        return revision == "main" or self.head(revision) is not None  # main exists before any commit

    def tree(self, revision: str = "main") -> dict[str, bytes]:
        head = self.head(revision)
        return head.files if head else {}

    @property
    def files(self) -> dict[str, bytes]:
        """The tree of `main`."""
        return self.tree()


class Call(NamedTuple):
    method: str
    path: str  # with the query string
    status: int
    had_auth: bool  # any Authorization header at all


@dataclass
class _Fault:
    status: int
    match: str | None
    body: Any
    headers: dict[str, str]


def _error(status: int, message: str, code: str | None = None, **headers: str) -> Answer:
    if code:
        headers["X-Error-Code"] = code
    return status, {"error": message}, headers


class HubDouble:
    def __init__(self, token: str = "hf_test_token_0123456789", initial_commit: bool = False):
        self.token = token
        self.initial_commit = initial_commit
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Call] = []
        self.unhandled: list[str] = []  # "METHOD path" of requests no route knew
        self.lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._serial = itertools.count(1)
        self._server = loopback.Server(_handler(self), "hub-double")
        self.url = self._server.url

    def start_server(self) -> None:
        self._server.start()

    def stop_server(self) -> None:
        self._server.stop()

    # -- control ------------------------------------------------------------------------------------------

    def fail_next(self, status: int, n: int = 1, match: str | None = None, body: Any = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `n` requests whose "METHOD path" contains `match` with `status`, before any auth
        check. The body defaults to {"error": <reason phrase>} (401: the Hub's bad-token answer)."""
        if body is None:
            body = {"error": BAD_TOKEN if status == 401 else _phrase(status)}
        with self.lock:
            self._faults += [_Fault(status, match, body, dict(headers or {})) for _ in range(n)]

    def add_repo(self, repo_id: str, files: dict[str, bytes] | None = None, *, private: bool = False,
                 type: str = "model") -> FakeRepo:
        """A repo made without the API (and one commit of `files`, if any), to download from."""
        with self.lock:
            repo = self._create(repo_id, type, private)
            if files:
                self._commit(repo, "main", {"summary": "Add files", "description": ""}, dict(files), [])
            return repo

    def calls(self, method: str | None = None, contains: str = "") -> list[Call]:
        with self.lock:
            return [c for c in self.requests if (method is None or c.method == method) and contains in c.path]

    def repo_url(self, repo: FakeRepo) -> str:
        return f"{self.url}/{URL_PREFIX[repo.type]}{repo.repo_id}"

    # -- state --------------------------------------------------------------------------------------------

    def _create(self, repo_id: str, kind: str, private: bool) -> FakeRepo:
        repo = self.repos[repo_id] = FakeRepo(repo_id, kind, private)
        if self.initial_commit:
            self._commit(repo, "main", {"summary": "initial commit", "description": ""},
                         {".gitattributes": GITATTRIBUTES}, [])
        return repo

    def _commit(self, repo: FakeRepo, branch: str, header: dict[str, Any], added: dict[str, bytes],
                deleted: list[str]) -> Commit:
        parent = repo.head(branch)
        files = dict(parent.files) if parent else {}
        for path in deleted:
            files.pop(path, None)
        files.update(added)
        summary = str(header.get("summary") or "")
        seed = f"{parent.oid if parent else ''}\n{summary}\n{next(self._serial)}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), summary, str(header.get("description") or ""), branch,
                        list(added), deleted, parent.oid if parent else None, files)
        repo.commits.append(commit)
        repo.branches[branch] = commit.oid
        return commit

    def _repo(self, kind: str, repo_id: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        return repo if repo is not None and repo.type == kind else None

    # -- routes -------------------------------------------------------------------------------------------

    def route(self, method: str, target: str, headers: Any, raw: bytes) -> Answer:
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.split("/")[1:]]  # split before unquoting: %2F stays inside
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        auth = headers.get("Authorization")
        if parts[:1] != ["api"]:
            return self._resolve(method, target, parts, auth)
        if auth != f"Bearer {self.token}":
            return _error(401, BAD_TOKEN, **{"X-Error-Message": BAD_TOKEN})
        if method == "GET" and parts == ["api", "whoami-v2"]:
            return 200, {"name": USER, "type": "user", "fullname": "Test User"}, {}
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create_route(_json(raw))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(_json(raw))
        if len(parts) < 4 or parts[1] not in KINDS:
            return self._unhandled(method, target)
        kind, repo_id, rest = KINDS[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
        repo = self._repo(kind, repo_id)
        if repo is None:
            return _error(404, "Repository not found", "RepoNotFound")
        if method == "GET" and (rest == [] or len(rest) == 2 and rest[0] == "revision"):
            return self._info(repo, rest[1] if rest else "main")
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            return self._tree(repo, rest[1], "/".join(rest[2:]), query.get("recursive", "").lower() == "true")
        if method == "POST" and len(rest) == 2 and rest[0] in ("preupload", "commit"):
            if query.get("create_pr"):
                return _error(400, "The hub double does not do pull requests")
            if not repo.knows(rest[1]):
                return _error(404, f"Invalid rev id: {rest[1]}", "RevisionNotFound")
            if rest[0] == "preupload":
                return self._preupload(_json(raw))
            return self._commit_route(repo, rest[1], headers.get("Content-Type", ""), raw)
        return self._unhandled(method, target)

    def _unhandled(self, method: str, target: str) -> Answer:
        self.unhandled.append(f"{method} {target}")
        return 404, {"error": "Sorry, we can't find the page you are looking for."}, {}

    def _create_route(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not body.get("name"):
            return _error(400, "Invalid request: name is required")
        kind = body.get("type") or "model"
        if kind not in URL_PREFIX:
            return _error(400, f"Invalid repo type: {kind}")
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        existing = self.repos.get(repo_id)
        if existing is not None:
            # The Hub leaves a repo that exists as it is: huggingface_hub's create_repo documents
            # `private`/`visibility` as "ignored if the repo already exists", and with exist_ok=True it
            # swallows this 409 and returns (hf_api.py, 2.4.0). Visibility changes only through
            # update_repo_settings, which the double does not imitate.
            return 409, {"error": f"You already created this {existing.type} repo",
                         "url": self.repo_url(existing)}, {}
        private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        repo = self._create(repo_id, kind, private)
        return 200, {"url": self.repo_url(repo), "name": repo_id}, {}

    def _validate_yaml(self, body: Any) -> Answer:
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            return 400, {"errors": [{"message": "content must be a string"}]}, {}
        match = FRONT_MATTER.match(content)
        if match is None:
            warning = {"message": "empty or missing yaml metadata in repo card"}
            return 200, {"errors": [], "warnings": [warning]}, {}
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"YAML metadata is not valid: {exc}"}]}, {}
        if metadata is not None and not isinstance(metadata, dict):
            return 400, {"errors": [{"message": "YAML metadata must be a mapping"}]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def _info(self, repo: FakeRepo, revision: str) -> Answer:
        if not repo.knows(revision):
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = repo.head(revision)
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": head.oid if head else None,
                "private": repo.private, "gated": False, "disabled": False,
                "lastModified": head.date if head else repo.created, "createdAt": repo.created,
                "tags": [], "siblings": [{"rfilename": p} for p in sorted(repo.tree(revision))]}
        card = card_data(repo.tree(revision).get("README.md"))
        if card:
            # ModelInfo reads "cardData" (into ModelCardData), "pipeline_tag" and "library_name"
            # (huggingface_hub hf_api.py ModelInfo.__init__); the Hub takes the last two from the card
            # when it sets them (hub-docs docs/hub/model-cards.md, "Specifying a library/a task").
            info["cardData"] = card
            info.update({k: card[k] for k in ("pipeline_tag", "library_name")
                         if isinstance(card.get(k), str)})
        return 200, info, {}

    def _tree(self, repo: FakeRepo, revision: str, path: str, recursive: bool) -> Answer:
        if not repo.knows(revision):
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = repo.tree(revision)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        below = sorted(p for p in files if p.startswith(prefix))
        if prefix and not below:
            return _error(404, f"{path} does not exist on \"{revision}\"", "EntryNotFound")
        folders: set[str] = set()
        entries = []
        for p in below:
            parts = p[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                data = files[p]
                entries.append({"type": "file", "oid": blob_oid(data), "size": len(data), "path": p})
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                    for f in sorted(folders)]
        return 200, entries, {}

    def _preupload(self, body: Any) -> Answer:
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, dict) and "path" in f for f in files):
            return _error(400, "Invalid preupload payload")
        return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                               for f in files]}, {}

    def _commit_route(self, repo: FakeRepo, revision: str, content_type: str, raw: bytes) -> Answer:
        if not content_type.startswith("application/x-ndjson"):
            return _error(400, f"The double only reads application/x-ndjson commits, not {content_type!r}")
        try:
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError:
            return _error(400, "Invalid ndjson")
        if not lines or not all(isinstance(line, dict) for line in lines) or lines[0].get("key") != "header":
            return _error(400, "The first line must be the commit header")
        header, head, files = lines[0].get("value") or {}, repo.head(revision), repo.tree(revision)
        if header.get("parentCommit") and (head is None or not head.oid.startswith(header["parentCommit"])):
            return _error(412, "A commit has happened since. Please refresh and try again.")
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            if key == "file" and value.get("encoding") == "base64":
                added[value["path"]] = base64.b64decode(value["content"])
            elif key == "file":
                added[value["path"]] = str(value.get("content", "")).encode()
            elif key == "deletedFile":
                if value["path"] not in files:
                    return _error(404, "A file with this name doesn't exist", "EntryNotFound")
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted += [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]
            elif key == "lfsFile":
                return _error(400, f"{value.get('path')}: the hub double only takes regular files, not LFS")
            else:
                return _error(400, f"Unknown commit operation: {key}")
        commit = self._commit(repo, revision, header, added, deleted)
        return 200, {"commitUrl": f"{self.repo_url(repo)}/commit/{commit.oid}", "commitOid": commit.oid,
                     "success": True}, {}

    def _resolve(self, method: str, target: str, parts: list[str], auth: str | None) -> Answer:
        kind = KINDS.get(parts[0]) if parts[0] in ("datasets", "spaces") else "model"
        parts = parts[1:] if kind != "model" else parts
        if method not in ("GET", "HEAD") or len(parts) < 5 or parts[2] != "resolve":
            return self._unhandled(method, target)
        if auth is not None and auth != f"Bearer {self.token}":
            return _error(401, BAD_TOKEN, **{"X-Error-Message": BAD_TOKEN})
        repo = self._repo(kind, f"{parts[0]}/{parts[1]}")
        if repo is not None and repo.private and auth is None:
            return _error(401, NO_LOGIN, "RepoNotFound", **{"X-Error-Message": NO_LOGIN})
        if repo is None:
            return _error(404, "Repository not found", "RepoNotFound")
        revision, path = parts[3], "/".join(parts[4:])
        if not repo.knows(revision):
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = repo.head(revision)
        if head is None or path not in head.files:
            found = {"X-Repo-Commit": head.oid} if head else {}  # the client caches the miss per commit
            return _error(404, "Entry not found", "EntryNotFound", **found)
        data = head.files[path]
        return 200, data, {"Content-Type": "application/octet-stream", "ETag": f'"{blob_oid(data)}"',
                           "X-Repo-Commit": head.oid}


def card_data(readme: bytes | None) -> dict[str, Any] | None:
    """The YAML front matter of a README.md, as the Hub parses it (None: none, or not a mapping)."""
    match = FRONT_MATTER.match(readme.decode("utf-8", "replace")) if readme else None
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) and data else None  # dates


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _handler(double: HubDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(loopback.Handler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            what = f"{self.command} {self.path}"
            with double.lock:
                fault = next((f for f in double._faults if f.match is None or f.match in what), None)
                if fault is not None:
                    double._faults.remove(fault)
                    status, payload, headers = fault.status, fault.body, fault.headers
                else:
                    try:
                        status, payload, headers = double.route(self.command, self.path, self.headers, raw)
                    except Exception as exc:  # a bug in the double: answer, and let the test see it
                        double.unhandled.append(f"{what} -> {exc!r}")
                        status, payload, headers = 500, {"error": f"hub double: {exc!r}"}, {}
                double.requests.append(Call(self.command, self.path, status,
                                            "Authorization" in self.headers))
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            if not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))  # a HEAD answer says what GET would send
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def hub_double(token: str = "hf_test_token_0123456789", initial_commit: bool = False
               ) -> contextlib.AbstractContextManager[HubDouble]:
    """A running double on 127.0.0.1 that accepts `token` (as `authorization: Bearer <token>`)."""
    return loopback.running(HubDouble(token, initial_commit))
