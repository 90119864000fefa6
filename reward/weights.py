"""Where weights come from: a local path, a Hugging Face hub repo, or a URL (cached)."""
from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .checkpoints import atomic_path
from .errors import WeightsNotFoundError

#: Environment variable overriding the download cache folder.
CACHE_ENV = "AIGC_REWARD_CACHE"


def cache_dir() -> Path:
    """The download cache: ``$AIGC_REWARD_CACHE`` or ``~/.cache/aigc_reward``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "aigc_reward"))


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(str(source)).scheme in {"http", "https"}


def is_hub_reference(source: str) -> bool:
    """``owner/repo[/path]`` that is not a local path or a URL."""
    text = str(source)
    local = Path(text).expanduser().exists() or text.startswith((".", "/", "~"))
    return not local and not is_url(text) and len(text.strip("/").split("/")) >= 2


def _url_folder(url: str) -> Path:
    return cache_dir() / "urls" / hashlib.sha256(url.encode()).hexdigest()[:16]


def download_url(url: str, *, folder: Path | None = None, progress: bool = True) -> Path:
    """Download ``url`` once into the cache (atomically) and return the cached file."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = (folder or _url_folder(url)) / name
    if target.is_file():
        return target
    if offline():
        raise WeightsNotFoundError(
            f"{url} is not in the cache ({target}) and HF_HUB_OFFLINE=1 forbids downloading; "
            "download it elsewhere and pass the local path."
        )
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        raise WeightsNotFoundError(f"could not download {url}: {error}; pass a local path instead.") from error
    return target


def _hub_download(repo_id: str, filename: str | None) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    if filename is None:
        return Path(snapshot_download(repo_id))
    return Path(hf_hub_download(repo_id, filename))


def resolve_file(source: str | os.PathLike, *, filename: str | None = None, what: str = "weights") -> Path:
    """Resolve ``source`` to a local file.

    ``source`` may be a file, a folder holding ``filename``, an http(s) URL, or a hub reference
    ``owner/repo`` (with ``filename``) or ``owner/repo/path/in/repo``.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir() and filename and (path / filename).is_file():
        return path / filename
    if is_url(text):
        return download_url(text)
    if is_hub_reference(text):
        parts = text.strip("/").split("/")
        repo_id = "/".join(parts[:2])
        in_repo = "/".join(parts[2:]) or filename
        try:
            return _hub_download(repo_id, in_repo)
        except Exception as error:  # hub raises many types: offline, 404, auth
            raise WeightsNotFoundError(
                f"could not get {what} {in_repo!r} from hub repo {repo_id!r} ({type(error).__name__}: {error}). "
                "Pass a local path (weights=/path/to/file) or unset HF_HUB_OFFLINE to download."
            ) from error
    raise WeightsNotFoundError(
        f"{what} not found at {text!r}: it is not a local file, a folder with {filename!r}, a URL or a hub repo id."
    )


def resolve_pretrained_dir(source: str | os.PathLike) -> Path:
    """Resolve a native checkpoint folder (``config.json`` + ``model.safetensors``): local, URL or hub id."""
    from .base import CONFIG_NAME, WEIGHTS_NAME

    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise WeightsNotFoundError(f"{path} has no {CONFIG_NAME}; is it a folder written by save_pretrained()?")
        return path
    if is_url(text):
        base = text.rstrip("/")
        folder = _url_folder(base)
        download_url(f"{base}/{WEIGHTS_NAME}", folder=folder)
        return download_url(f"{base}/{CONFIG_NAME}", folder=folder).parent
    if not is_hub_reference(text):
        raise WeightsNotFoundError(
            f"native checkpoint not found at {text!r}: it is not a folder written by save_pretrained(), a URL or a hub repo id."
        )
    repo = text.strip("/")
    config = resolve_file(f"{repo}/{CONFIG_NAME}", what="native checkpoint config")
    resolve_file(f"{repo}/{WEIGHTS_NAME}", what="native checkpoint weights")  # lands beside it (same snapshot)
    return config.parent


def native_folder(source: Any) -> Path | None:
    """The local folder of a native checkpoint at ``source`` (a folder, or a hub repo ``owner/repo`` whose
    ``config.json`` was written by ``save_pretrained``), downloading it if needed; None if it is not one."""
    from .base import CONFIG_NAME

    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        return path if (path / CONFIG_NAME).is_file() else None
    if not is_hub_reference(text) or text.strip("/").count("/") != 1:  # owner/repo/file is a converter's file
        return None
    try:
        payload = json.loads(resolve_file(f"{text.strip('/')}/{CONFIG_NAME}", what="native checkpoint config").read_text())
    except (WeightsNotFoundError, ValueError):  # not on the hub, offline, or no JSON config: not a native folder
        return None
    if not (isinstance(payload, dict) and "architecture" in payload and "format_version" in payload):
        return None
    return resolve_pretrained_dir(text)
