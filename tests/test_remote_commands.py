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
