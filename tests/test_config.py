import pytest

from lorad.core import config, workspace


def write(tmp_path, text):
    path = tmp_path / "lorad.toml"
    path.write_text(text)
    return path


def test_defaults_when_missing(tmp_path):
    cfg = config.load(tmp_path / "lorad.toml")
    assert cfg["daemon"]["max_concurrent"] == 4


def test_unknown_key_names_key_file_and_line(tmp_path):
    path = write(tmp_path, "[daemon]\nmax_concurrent = 2\nmax_concurent = 3\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert f"{path}:3:" in str(err.value)
    assert "daemon.max_concurent" in str(err.value)


def test_wrong_type_names_key_and_line(tmp_path):
    path = write(tmp_path, "[workspace]\nname = 'x'\n\n[tui]\nrefresh_interval = \"fast\"\n")
    with pytest.raises(config.ConfigError, match=r":5: tui.refresh_interval must be"):
        config.load(path)


def test_bool_is_not_a_number(tmp_path):
    path = write(tmp_path, "[daemon]\nmax_attempts = true\n")
    with pytest.raises(config.ConfigError, match="daemon.max_attempts must be an integer"):
        config.load(path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, "\n[deamon]\nx = 1\n")
    with pytest.raises(config.ConfigError, match=r":2: unknown section \[deamon\]"):
        config.load(path)


def test_concurrency_table(tmp_path):
    path = write(tmp_path, "[daemon.concurrency]\ningest = 2\n")
    assert config.load(path).concurrency == {"ingest": 2}
    path = write(tmp_path, "[daemon.concurrency]\ningest = 'two'\n")
    with pytest.raises(config.ConfigError, match=r":2: daemon.concurrency.ingest"):
        config.load(path)


def test_example_config_is_valid_and_documents_every_key(tmp_path):
    text = workspace.example_config()
    cfg = config.load(write(tmp_path, text))
    assert cfg.values == config.defaults(), "lorad.toml must show the defaults"
    for section, keys in config.SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"\n{key} = " in text, f"{section}.{key} is not in lorad.toml"


def test_workspace_found_by_walking_up(tmp_path, monkeypatch):
    monkeypatch.delenv("LORAD_WORKSPACE", raising=False)
    ws = workspace.init(tmp_path / "w")
    deep = ws.root / "media" / "a"
    deep.mkdir(parents=True)
    assert workspace.find(cwd=deep).root == ws.root
    monkeypatch.setenv("LORAD_WORKSPACE", str(ws.root))
    assert workspace.find(cwd=tmp_path).root == ws.root
    with pytest.raises(workspace.WorkspaceError, match="lorad init"):
        workspace.find(tmp_path / "nope")


def test_a_zero_concurrency_is_refused(tmp_path):
    path = tmp_path / "lorad.toml"
    path.write_text('[daemon.concurrency]\n"gen.run" = 0\n')
    with pytest.raises(config.ConfigError, match="gen.run must be 1 to 1000"):
        config.load(path)


@pytest.mark.parametrize("text,problem", [
    ("[daemon]\nlease_seconds = 0\n", "daemon.lease_seconds must be at least 3, got 0"),
    ("[daemon]\nmax_concurrent = -2\n", "daemon.max_concurrent must be at least 1, got -2"),
    ("[daemon]\npoll_interval = nan\n", "daemon.poll_interval must be a finite number"),
    ("[generations]\npoll_seconds = inf\n", "generations.poll_seconds must be a finite number"),
    ("[ingest]\nscene_threshold = 1.5\n", "ingest.scene_threshold must be at most 1, got 1.5"),
    ('[daemon.concurrency]\n"gen.run" = -1\n', 'daemon.concurrency.gen.run must be 1 to 1000'),
])
def test_numbers_out_of_range_are_refused_with_file_line_and_key(tmp_path, text, problem):
    """They were taken as they were (a lease of 0 s, a NaN poll interval)."""
    path = write(tmp_path, "# lorad\n" + text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}:3: ") and problem in str(err.value)
