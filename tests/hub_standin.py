"""A local HTTP stand-in for the Hugging Face hub endpoints that uploading and downloading a model use.

Point huggingface_hub at it with ``HF_ENDPOINT`` (read when huggingface_hub is imported, so in a process
started with that environment). It implements, in memory, what ``HfApi.create_repo`` / ``create_commit``
and ``hf_hub_download`` call, following huggingface_hub's client code:

- ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the README's metadata block must be YAML);
- ``POST /api/models/{repo}/preupload/{revision}``: files whose suffix the hub stores in LFS
  (``.safetensors``, ``.bin``, ``.pt``, ``.pth``) are ``lfs``, others ``regular`` (inline in the commit);
- ``POST /{repo}.git/info/lfs/objects/batch`` (basic transfer), ``PUT`` of the object (its sha256 is
  checked) and the verify call;
- ``POST /api/models/{repo}/commit/{revision}`` (ndjson: a header, ``file`` and ``lfsFile`` lines);
- ``HEAD`` / ``GET /{repo}/resolve/{revision}/{path}``, with the commit and ETag headers the client reads.

API writes need ``Authorization: Bearer <token>``; the LFS upload URL needs none (on the hub it is pre-signed). Xet storage is not emulated: clients set
``HF_HUB_DISABLE_XET=1`` and take the LFS path, as they do where hf_xet is not installed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_REPO = r"(?P<repo>[^/]+/[^/]+)"


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_paths: set[str] = field(default_factory=set)
    commits: list[str] = field(default_factory=lambda: ["0" * 40])
    messages: list[str] = field(default_factory=list)


class HubStandIn:
    """The in-memory hub: repos, LFS objects, and a log of every request (method, path)."""

    def __init__(self, token: str = "test-token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    routes = [
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("POST", rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", "lfs_put"),
        ("POST", r"/lfs-objects/(?P<oid>[0-9a-f]{64})/verify", "lfs_verify"),
        ("POST", rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", "commit"),
        ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("HEAD", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        def do_PUT(self):
            self._dispatch("PUT")

        # -- plumbing ---------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((method, path))
            self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            for verb, pattern, name in routes:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    if method == "POST" and name != "validate_yaml" and not self._authorised():
                        return self._json(401, {"error": "Invalid credentials in Authorization header"})
                    return getattr(self, name)(**match.groupdict())
            self._json(404, {"error": f"no route for {method} {path}"})

        def _authorised(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: object, **headers: str) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})

        def _repo(self, repo: str) -> Repo | None:
            if repo not in hub.repos:
                self._json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
                return None
            return hub.repos[repo]

        # -- endpoints ----------------------------------------------------------------------------
        def create_repo(self) -> None:
            payload = json.loads(self.body)
            repo = f"{payload['organization']}/{payload['name']}"
            if repo in hub.repos:
                return self._json(409, {"error": "You already created this model repo", "url": f"{hub.endpoint}/{repo}"})
            hub.repos[repo] = Repo()
            self._json(200, {"url": f"{hub.endpoint}/{repo}"})

        def validate_yaml(self) -> None:
            content = json.loads(self.body)["content"]
            match = re.match(r"---\n(.*?)\n---\n", content, flags=re.S)
            try:
                metadata = yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as error:
                return self._json(400, {"errors": [{"message": str(error)}]})
            if not isinstance(metadata, dict):
                return self._json(400, {"errors": [{"message": "README.md has no YAML metadata block"}]})
            self._json(200, {"errors": [], "warnings": []})

        def preupload(self, repo: str, rev: str) -> None:
            if self._repo(repo) is None:
                return
            files = json.loads(self.body)["files"]
            modes = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                      "shouldIgnore": False} for f in files]
            self._json(200, {"files": modes, "commitOid": hub.repos[repo].commits[-1]})

        def lfs_batch(self, repo: str) -> None:
            if self._repo(repo) is None:
                return
            payload = json.loads(self.body)
            if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
                return self._json(422, {"message": "only basic LFS uploads are served here"})
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.lfs_objects:
                    href = f"{hub.endpoint}/lfs-objects/{obj['oid']}"
                    entry["actions"] = {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}}
                objects.append(entry)
            self._json(200, {"transfer": "basic", "objects": objects})

        def lfs_put(self, oid: str) -> None:
            if hashlib.sha256(self.body).hexdigest() != oid:
                return self._json(400, {"error": "sha256 of the uploaded object does not match its oid"})
            hub.lfs_objects[oid] = self.body
            self._send(200, b"", {})

        def lfs_verify(self, oid: str) -> None:
            payload = json.loads(self.body)
            stored = hub.lfs_objects.get(oid)
            if stored is None or len(stored) != payload["size"]:
                return self._json(404, {"error": f"object {oid} was not uploaded"})
            self._json(200, {"oid": oid})

        def commit(self, repo: str, rev: str) -> None:
            target = self._repo(repo)
            if target is None:
                return
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
            if not lines or lines[0]["key"] != "header":
                return self._json(400, {"error": "a commit starts with its header"})
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    target.files[value["path"]] = base64.b64decode(value["content"])
                    target.lfs_paths.discard(value["path"])
                elif line["key"] == "lfsFile":
                    data = hub.lfs_objects.get(value["oid"])
                    if data is None or len(data) != value["size"]:
                        return self._json(400, {"error": f"LFS object of {value['path']} was not uploaded"})
                    target.files[value["path"]] = data
                    target.lfs_paths.add(value["path"])
                else:
                    return self._json(400, {"error": f"operation {line['key']!r} is not served here"})
            digest = hashlib.sha1(target.commits[-1].encode())
            for path in sorted(target.files):
                digest.update(path.encode() + hashlib.sha256(target.files[path]).digest())
            target.commits.append(digest.hexdigest())
            target.messages.append(lines[0]["value"]["summary"])
            oid = target.commits[-1]
            self._json(200, {"commitUrl": f"{hub.endpoint}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

        def resolve(self, repo: str, rev: str, path: str) -> None:
            target = self._repo(repo)
            if target is None:
                return
            if rev not in ("main", target.commits[-1]) or path not in target.files:
                return self._json(404, {"error": f"{path} not found"}, **{"X-Error-Code": "EntryNotFound"})
            data = target.files[path]
            self._send(200, data, {
                "Content-Type": "application/octet-stream",
                "X-Repo-Commit": target.commits[-1],
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            })

    return Handler
