"""The Hugging Face Hub through huggingface_hub, with HF_TOKEN from the environment and nothing
else: one commit per publish, resolve URLs pinned to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lorad.core import secrets
from lorad.publish.publishers import (
    PUBLISHERS,
    Published,
    PublishError,
    PublishLater,
    PublishRefused,
)

TOKEN_ENV = "HF_TOKEN"


class Hub:
    name = "hub"
    title = "the Hugging Face Hub"
    secrets = (TOKEN_ENV,)

    def missing_credentials(self) -> str | None:
        if secrets.get(TOKEN_ENV) is None:
            return f"{TOKEN_ENV} is not set here: the daemon needs it (a write token)"
        return None

    def check_repo(self, repo: str) -> str:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        if repo.count("/") != 1:
            raise PublishError(f"--repo {repo!r}: use owner/name, e.g. you/truck-lora")
        try:
            validate_repo_id(repo)
        except HFValidationError as exc:
            raise PublishError(f"--repo {repo!r}: {str(exc).splitlines()[0]}") from None
        return repo

    def publish(self, settings: dict[str, Any], repo: str, folder: Path, *, private: bool,
                message: str) -> Published:
        token = secrets.get(TOKEN_ENV)
        if token is None:
            raise PublishRefused(f"{TOKEN_ENV} is not set: create a write token at "
                                 f"https://huggingface.co/settings/tokens and export {TOKEN_ENV}")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # no calls beside the upload
        from huggingface_hub import HfApi, hf_hub_url

        api = HfApi(endpoint=settings.get("endpoint") or None, token=token)
        try:
            api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
            visible = repo_private(api, repo)
            if private and visible is False:  # uploading would make the files public
                raise PublishRefused(
                    f"repo {repo} already exists and is public, and the Hub keeps an existing "
                    "repo's visibility (--private cannot change it): nothing was uploaded. Make "
                    "it private in the repo's Settings on the Hub and publish again, publish to "
                    "another --repo, or publish without --private")
            info = api.upload_folder(repo_id=repo, folder_path=folder, commit_message=message,
                                     repo_type="model")
        except PublishRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a readable, classified error
            raise hub_error(exc, repo) from None
        revision = info.oid
        files = {p.relative_to(folder).as_posix(): hf_hub_url(
            repo, p.relative_to(folder).as_posix(), revision=revision, endpoint=api.endpoint)
            for p in sorted(folder.rglob("*")) if p.is_file()}
        return Published(repo, str(info.commit_url), revision, files,
                         private if visible is None else visible)


def repo_private(api: Any, repo: str) -> bool | None:
    """The repo's real visibility. create_repo(private=...) does not change a repo that exists:
    huggingface_hub's create_repo docstring says the value "is ignored if the repo already
    exists", and with exist_ok=True it swallows the Hub's 409 and returns the repo as it is
    (hf_api.py, huggingface_hub 2.4). repo_info (GET /api/models/{repo}) says what it is."""
    return api.repo_info(repo, repo_type="model").private


def hub_error(exc: Exception, repo: str) -> Exception:
    """Classify a huggingface_hub/httpx failure: retry later, or tell the person what to fix."""
    import httpx

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if status in (401, 403):
        return PublishRefused(f"the Hub refused {repo} ({status}): check that {TOKEN_ENV} is a "
                              "write token for that namespace")
    if status in (408, 429) or (status or 0) >= 500 or (
            status is None and isinstance(exc, (httpx.TransportError, OSError))):
        return PublishLater(f"the Hub did not take {repo} this time ({text})")
    return PublishRefused(f"the Hub refused {repo}: {text}")


PUBLISHERS.register(Hub.name, Hub())
