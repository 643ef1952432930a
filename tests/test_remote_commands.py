"""What lorad sends to a pod is quoted or refused, piece by piece: environment names included
(issue: a training config's env keys were not quoted)."""

from __future__ import annotations

import pytest
from helpers import wait_for
from sshd import start_sshd

from lorad.training.ssh import Endpoint, RemoteError, Shell
from lorad.training.trainers import TrainConfigError
from lorad.training.trainers.musubi.config import TrainConfig, check

HOSTILE = ["X; touch {marker}; Y", "X=$(touch {marker})", "A B", "1ST", "X`touch {marker}`",
           "X\ntouch {marker}"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_sshd(tmp_path_factory.mktemp("pod")) as srv:
        yield srv


@pytest.fixture
def shell(server):
    with Shell(Endpoint(server.host, server.port, server.user, str(server.key_file))) as sh:
        yield sh


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_environment_name_runs_nothing_on_the_pod(shell, tmp_path, name):
    marker = tmp_path / "pwned"
    with pytest.raises(RemoteError, match="is not a name"):
        shell.start_detached(str(tmp_path), "true", log=str(tmp_path / "x.log"),
                             exit_file=str(tmp_path / "x.exit"),
                             env={name.format(marker=marker): "1"})
    assert not marker.exists()


def test_hostile_values_arrive_as_plain_text(shell, tmp_path):
    marker = tmp_path / "pwned"
    value = f"a'b\"c $(touch {marker}) `touch {marker}`; touch {marker}"
    shell.start_detached(str(tmp_path), 'printf %s "$HOSTILE"', log=str(tmp_path / "v.log"),
                         exit_file=str(tmp_path / "v.exit"), env={"HOSTILE": value})
    wait_for(lambda: (tmp_path / "v.exit").exists(), message="the command to finish")
    assert (tmp_path / "v.log").read_text() == value and not marker.exists()


@pytest.mark.parametrize("name", HOSTILE)
def test_a_training_config_with_a_hostile_env_name_is_refused_before_upload(name):
    cfg = TrainConfig(dit="/m/dit", vae="/m/vae", t5="/m/t5", env={name: "1"})
    with pytest.raises(TrainConfigError, match="is not an environment variable name"):
        check(cfg)


def test_remote_hashes_of_names_with_backslashes_and_newlines(shell, tmp_path):
    """sha256sum escapes such names (and marks the line with a backslash): the upload used to
    loop forever, never finding the file it had just sent ("files do not match")."""
    import hashlib

    names = ["plain.txt", "back\\slash.txt", "new\nline.txt", "both\\n.txt"]
    for n, name in enumerate(names):
        (tmp_path / name).write_bytes(b"content %d" % n)
    found = shell.sha256_many([str(tmp_path / name) for name in names])
    assert found == {str(tmp_path / name): hashlib.sha256(b"content %d" % n).hexdigest()
                     for n, name in enumerate(names)}


def test_an_upload_to_a_path_with_a_backslash_ends_and_is_not_repeated(shell, tmp_path):
    local = tmp_path / "src.bin"
    local.write_bytes(b"x" * 5000)
    remote = str(tmp_path / "dest" / "a\\b.bin")
    shell.upload_tree([(local, remote)])
    assert (tmp_path / "dest" / "a\\b.bin").read_bytes() == local.read_bytes()
    assert shell.sha256_many([remote])  # found by its real name: nothing to send again
