"""Contract test: the real huggingface_hub client against the loopback Hub double (support/hub_double.py).

If these fail after a huggingface_hub upgrade, the double (not lorad) is what drifted from the client.
"""

import os

# Before huggingface_hub is imported, which reads them into `constants` (the fixture below also patches
# those, in case another test module imported it first). Without Xet, upload_folder takes the single-commit
# path; without telemetry, the first request does not first fetch https://huggingface.co/api/agent-harnesses.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import base64  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from hub_double import GITATTRIBUTES, HubDouble, blob_oid, hub_double  # noqa: E402
from huggingface_hub import HfApi, constants, hf_hub_download, hf_hub_url  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import _http  # noqa: E402

BINARY = bytes(range(256)) * 4 + b"\x00\xff\r\n"
CONFIG = b'{"rank": 16}\n'
NOTES = "alpha \u00e9t\u00e9\n".encode()


@pytest.fixture(autouse=True)
def hf_constants(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub():
    with hub_double() as double:
        yield double
    assert double.unhandled == []  # the client used no route the double does not imitate


@pytest.fixture
def api(hub: HubDouble) -> HfApi:
    return HfApi(endpoint=hub.url, token=hub.token)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """http_backoff's waits, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=waits.append))
    return waits


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lora"
    (folder / "sub dir").mkdir(parents=True)
    (folder / "adapter.bin").write_bytes(BINARY)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "sub dir" / "notes.txt").write_bytes(NOTES)
    return folder


def test_create_private_repo_then_exist_ok(hub, api):
    url = api.create_repo("team/lora-a", private=True)
    assert (url, url.repo_id) == (f"{hub.url}/team/lora-a", "team/lora-a")
    assert hub.repos["team/lora-a"].private is True
    assert (hub.repos["team/lora-a"].files, hub.repos["team/lora-a"].commits) == ({}, [])

    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("team/lora-a", private=True)
    assert err.value.response.status_code == 409
    assert "You already created this model repo" in str(err.value)
    assert api.create_repo("team/lora-a", private=True, exist_ok=True) == url  # reads the url in the 409

    assert api.create_repo("lora-b").repo_id == "tester/lora-b"  # no namespace: the token's user
    assert hub.repos["tester/lora-b"].private is False
    assert [(c.method, c.path, c.status, c.had_auth) for c in hub.requests] == (
        [("POST", "/api/repos/create", status, True) for status in (200, 409, 409, 200)])


def test_upload_file_and_folder_store_the_exact_bytes(hub, api, tmp_path):
    api.create_repo("team/lora", private=True)
    info = api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
    folder = api.upload_folder(folder_path=_folder(tmp_path), repo_id="team/lora", path_in_repo="v1",
                               commit_message="Upload v1", commit_description="rank 16")

    repo = hub.repos["team/lora"]
    assert repo.files == {"config.json": CONFIG, "v1/adapter.bin": BINARY, "v1/config.json": CONFIG,
                          "v1/sub dir/notes.txt": NOTES}
    first, second = repo.commits
    assert (first.summary, first.paths) == ("Upload config.json with huggingface_hub", ["config.json"])
    assert (second.summary, second.description) == ("Upload v1", "rank 16")
    assert sorted(second.paths) == ["v1/adapter.bin", "v1/config.json", "v1/sub dir/notes.txt"]
    assert second.parent == first.oid and len(second.oid) == 40
    assert (info.oid, folder.oid) == (first.oid, second.oid)
    assert folder.commit_url == f"{hub.url}/team/lora/commit/{second.oid}"
    # each upload: preupload (modes), then one ndjson commit (the double refuses any other content type)
    assert [(c.method, c.path) for c in hub.requests[1:]] == 2 * [
        ("POST", "/api/models/team/lora/preupload/main"), ("POST", "/api/models/team/lora/commit/main")]


def test_resolve_url_and_hf_hub_download_give_the_bytes_back(hub, api, tmp_path):
    api.create_repo("team/lora", private=True)
    commit = api.upload_folder(folder_path=_folder(tmp_path), repo_id="team/lora")

    url = hf_hub_url("team/lora", "sub dir/notes.txt", endpoint=hub.url)
    assert url == f"{hub.url}/team/lora/resolve/main/sub%20dir/notes.txt"
    r = httpx.get(url, headers={"authorization": f"Bearer {hub.token}"})
    assert (r.status_code, r.content) == (200, NOTES)
    assert (r.headers["ETag"], r.headers["X-Repo-Commit"]) == (f'"{blob_oid(NOTES)}"', commit.oid)

    cache = tmp_path / "cache"
    path = Path(hf_hub_download("team/lora", "adapter.bin", endpoint=hub.url, token=hub.token,
                                cache_dir=cache))
    assert path.read_bytes() == BINARY
    assert path.parent.name == commit.oid  # snapshots/<X-Repo-Commit>/
    path = Path(api.hf_hub_download("team/lora", "sub dir/notes.txt", cache_dir=cache))
    assert path.read_bytes() == NOTES
    assert [(c.method, c.status) for c in hub.calls(contains="/resolve/")] == [
        ("GET", 200), ("HEAD", 200), ("GET", 200), ("HEAD", 200), ("GET", 200)]  # HEAD for metadata first

    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download("team/lora", "missing.bin", cache_dir=cache)


def test_private_repo_downloads_need_the_token(hub, api, tmp_path):
    hub.add_repo("team/secret", {"w.bin": BINARY}, private=True)
    hub.add_repo("team/open", {"w.bin": BINARY})
    url = hf_hub_url("team/secret", "w.bin", endpoint=hub.url)

    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer hf_wrong"}).status_code == 401
    assert httpx.get(hf_hub_url("team/open", "w.bin", endpoint=hub.url)).content == BINARY
    with pytest.raises(RepositoryNotFoundError) as err:  # X-Error-Code: RepoNotFound, as the Hub hides it
        hf_hub_download("team/secret", "w.bin", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert err.value.response.status_code == 401
    assert [(c.method, c.status, c.had_auth) for c in hub.requests] == [
        ("GET", 401, False), ("GET", 401, True), ("GET", 200, False), ("HEAD", 401, False)]


def test_a_wrong_token_is_refused(hub):
    api = HfApi(endpoint=hub.url, token="hf_wrong")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("team/lora")
    assert not isinstance(err.value, RepositoryNotFoundError)
    assert err.value.response.status_code == 401
    assert "Invalid credentials in Authorization header" in str(err.value)
    with pytest.raises(HfHubHTTPError) as err:  # exist_ok: a 401 may hide an existing repo: asks repo_info
        api.create_repo("team/lora", exist_ok=True)
    assert err.value.response.status_code == 401
    hub.add_repo("team/lora")
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
    assert err.value.response.status_code == 401
    assert [(c.method, c.path, c.status) for c in hub.requests] == [
        ("POST", "/api/repos/create", 401), ("POST", "/api/repos/create", 401),
        ("GET", "/api/models/team/lora", 401),
        ("POST", "/api/models/team/lora/preupload/main", 401)]  # 401 is not retried
    assert hub.repos["team/lora"].commits == []


def test_info_listing_whoami_and_delete(hub, api):
    repo = hub.add_repo("team/lora", {"a.bin": BINARY, "sub/b.json": CONFIG})
    info = api.model_info("team/lora")
    assert (info.id, info.sha, info.private) == ("team/lora", repo.commits[-1].oid, False)
    assert [s.rfilename for s in info.siblings] == ["a.bin", "sub/b.json"]
    assert api.list_repo_files("team/lora") == ["a.bin", "sub/b.json"]
    assert api.whoami()["name"] == "tester"
    api.delete_file("a.bin", repo_id="team/lora")
    assert sorted(repo.files) == ["sub/b.json"]
    assert repo.commits[-1].deleted == ["a.bin"]
    old = api.model_info("team/lora", revision=repo.commits[0].oid)  # a commit oid is a revision too
    assert [s.rfilename for s in old.siblings] == ["a.bin", "sub/b.json"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("team/nope")


def test_initial_commit_starts_a_repo_as_the_hub_does():
    with hub_double(initial_commit=True) as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)
        api.create_repo("team/lora")
        repo = hub.repos["team/lora"]
        assert repo.files == {".gitattributes": GITATTRIBUTES}
        assert [c.summary for c in repo.commits] == ["initial commit"]
        assert api.model_info("team/lora").sha == repo.commits[0].oid
        info = api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
        assert repo.commits[-1].parent == repo.commits[0].oid
        assert api.model_info("team/lora").sha == info.oid == repo.commits[-1].oid
        assert sorted(repo.files) == [".gitattributes", "config.json"]
        assert hub.unhandled == []


def test_a_readme_is_validated_before_the_commit(hub, api):
    api.create_repo("team/lora")
    card = b"---\nlicense: apache-2.0\ntags: [lora]\n---\n# Truck LoRA\n"
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id="team/lora")
    assert hub.repos["team/lora"].files["README.md"] == card
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [unclosed\n---\n", path_in_repo="README.md",
                        repo_id="team/lora")
    with pytest.warns(UserWarning, match="empty or missing yaml metadata"):
        api.upload_file(path_or_fileobj=b"# no metadata\n", path_in_repo="README.md", repo_id="team/lora")
    assert [(c.path, c.status) for c in hub.requests[1:5]] == [
        ("/api/validate-yaml", 200), ("/api/models/team/lora/preupload/main", 200),
        ("/api/models/team/lora/commit/main", 200), ("/api/validate-yaml", 400)]  # a bad card: no upload


def test_an_injected_500_on_commit_is_not_retried(hub, api, sleeps):
    api.create_repo("team/lora")
    hub.fail_next(500, match="/commit/")
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
    assert err.value.response.status_code == 500
    assert [c.status for c in hub.calls("POST", "/commit/")] == [500]  # create_commit posts once
    assert sleeps == [] and "config.json" not in hub.repos["team/lora"].files

    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
    assert hub.repos["team/lora"].files["config.json"] == CONFIG


def test_preupload_is_retried_with_backoff(hub, api, sleeps):
    api.create_repo("team/lora")
    hub.fail_next(503, n=2, match="/preupload/")
    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id="team/lora")
    assert [c.status for c in hub.calls("POST", "/preupload/")] == [503, 503, 200]
    assert sleeps == [1, 2]  # http_backoff: 1 s, doubling
    assert hub.repos["team/lora"].files["config.json"] == CONFIG


def test_the_double_refuses_lfs_lines_and_records_unknown_routes(hub):
    hub.add_repo("team/lora")
    auth = {"authorization": f"Bearer {hub.token}"}
    lines = [{"key": "header", "value": {"summary": "lfs", "description": ""}},
             {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 1}}]
    r = httpx.post(f"{hub.url}/api/models/team/lora/commit/main",
                   content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
                   headers={**auth, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 400 and hub.repos["team/lora"].commits == []
    good = [lines[0], {"key": "file", "value": {"path": "a", "encoding": "base64",
                                                "content": base64.b64encode(b"a").decode()}}]
    r = httpx.post(f"{hub.url}/api/models/team/lora/commit/main", json=good, headers=auth)
    assert r.status_code == 400  # plain JSON: the double only speaks ndjson, like the client
    r = httpx.get(f"{hub.url}/api/spaces/team/lora/runtime", headers=auth)
    assert r.status_code == 404  # a model repo under the spaces prefix is not found
    r = httpx.get(f"{hub.url}/api/models/team/lora/refs", headers=auth)
    assert (r.status_code, hub.unhandled) == (404, ["GET /api/models/team/lora/refs"])
    hub.unhandled.clear()


def test_create_repo_keeps_an_existing_repos_visibility(hub, api):
    api.create_repo("team/open")
    api.create_repo("team/secret", private=True)
    # huggingface_hub: `private` "is ignored if the repo already exists"; exist_ok swallows the 409
    assert api.create_repo("team/open", private=True, exist_ok=True).repo_id == "team/open"
    api.create_repo("team/secret", private=False, exist_ok=True)
    assert (hub.repos["team/open"].private, hub.repos["team/secret"].private) == (False, True)
    assert api.repo_info("team/open").private is False
    assert api.model_info("team/secret").private is True
    assert [(c.method, c.path, c.status) for c in hub.requests[2:]] == [
        ("POST", "/api/repos/create", 409), ("POST", "/api/repos/create", 409),
        ("GET", "/api/models/team/open", 200), ("GET", "/api/models/team/secret", 200)]


def test_model_info_reads_the_cards_metadata(hub, api):
    api.create_repo("team/lora")
    assert api.model_info("team/lora").card_data is None  # no README.md: no cardData
    card = (b'---\ntags:\n- lora\n- wan\npipeline_tag: text-to-video\nlibrary_name: diffusers\n'
            b'base_model: "Wan-AI/Wan2.2-T2V-A14B"\ninstance_prompt: "TRK"\n---\n# Truck\n')
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id="team/lora")
    info = api.model_info("team/lora")
    assert (info.pipeline_tag, info.library_name) == ("text-to-video", "diffusers")
    assert info.card_data.base_model == "Wan-AI/Wan2.2-T2V-A14B"
    assert info.card_data.instance_prompt == "TRK" and info.card_data.tags == ["lora", "wan"]
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md",
                    repo_id="team/lora")
    info = api.model_info("team/lora")
    assert (info.pipeline_tag, info.library_name, info.card_data.license) == (None, None, "mit")
