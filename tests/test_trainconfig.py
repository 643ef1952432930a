"""Training configs: invalid combinations refused before upload; commands carry every
argument the reference says must always be passed, quoted."""

from __future__ import annotations

import shlex

import pytest

from lorad.training.trainers import TrainConfigError
from lorad.training.trainers.musubi.config import TrainConfig, stage_commands, validate

BASE = dict(dit="/m/wan2.1_t2v_14B_bf16.safetensors", vae="/m/Wan2.1_VAE.pth",
            t5="/m/models_t5_umt5-xxl-enc-bf16.pth")


def cmds(**kw):
    cfg = TrainConfig(**{**BASE, **kw})
    return {k: shlex.split(v) for k, v in stage_commands(
        cfg, dataset_config="/w/ds/dataset.toml", output_dir="/w/run 1/out",
        output_name="truck", sample_prompts="/w/ds/sample_prompts.txt").items()}


def test_always_passed_arguments_are_there():
    train = cmds(mixed_precision="bf16")["train"]
    for flag in ("--sdpa", "--optimizer_type", "--output_dir", "--output_name",
                 "--network_module", "--network_dim", "--network_alpha", "--mixed_precision",
                 "--dataset_config", "--dit", "--save_state"):
        assert flag in train, flag
    assert train[:6] == ["accelerate", "launch", "--num_cpu_threads_per_process", "1",
                         "--mixed_precision", "bf16"]
    assert train[train.index("--network_module") + 1] == "networks.lora_wan"
    assert train[train.index("--output_dir") + 1] == "/w/run 1/out"  # quoted, one argument


def test_cache_stages():
    c = cmds()
    assert c["latents"][:2] == ["python", "src/musubi_tuner/wan_cache_latents.py"]
    assert "--i2v" not in c["latents"]
    assert c["text"][c["text"].index("--t5") + 1] == BASE["t5"]
    i2v = cmds(task="i2v-14B", clip="/m/clip.pth")["latents"]
    assert "--i2v" in i2v and i2v[i2v.index("--clip") + 1] == "/m/clip.pth"


def test_wan22_experts_get_the_reference_timestep_ranges():
    high = cmds(task="t2v-A14B", expert="high", mixed_precision="fp16")["train"]
    assert high[high.index("--min_timestep") + 1] == "875"
    assert high[high.index("--max_timestep") + 1] == "1000"
    low = cmds(task="i2v-A14B", expert="low", mixed_precision="fp16")["train"]
    assert low[low.index("--max_timestep") + 1] == "900"
    both = cmds(task="t2v-A14B", expert="both", dit_high_noise="/m/high.safetensors",
                mixed_precision="fp16")["train"]
    assert both[both.index("--timestep_boundary") + 1] == "875"  # an int: 0.875 is refused


@pytest.mark.parametrize("kw,problem", [
    (dict(task="t2v-A14B", mixed_precision="fp16"), "set expert to high, low or both"),
    (dict(task="t2v-A14B", expert="both", mixed_precision="fp16"), "needs dit_high_noise"),
    (dict(expert="high"), "expert is for Wan 2.2"),
    (dict(blocks_to_swap=40), "0 to 39"),
    (dict(task="t2v-A14B", expert="both", dit_high_noise="/h", mixed_precision="fp16",
          offload_inactive_dit=True, blocks_to_swap=10), "cannot be combined"),
    (dict(attention="sage_attn"), "attention must be"),
    (dict(max_train_steps=100), "exactly one of max_train_epochs and max_train_steps"),
    (dict(task="i2v-14B"), "set clip"),
    (dict(task="flf2v-14B"), "set clip"),  # it reads cached CLIP features like i2v-14B
    (dict(task="t2v-1.3B", blocks_to_swap=30), "0 to 29"),  # 30 blocks: musubi asserts
    (dict(data_loader_workers=-1), "data_loader_workers must be 0 or more"),
    (dict(optimizer="SGDD"), "a torch.optim class"),
    (dict(dit=""), "dit (path"),
    (dict(task="t2v-99B"), "is not one of"),
])
def test_invalid_combinations_are_refused(kw, problem):
    cfg = TrainConfig(**{**BASE, **kw})
    assert any(problem in p for p in validate(cfg)), validate(cfg)
    with pytest.raises(TrainConfigError):
        stage_commands(cfg, dataset_config="d", output_dir="o", output_name="n")


def test_unknown_option_names_the_known_ones():
    with pytest.raises(TrainConfigError, match="unknown training option"):
        TrainConfig.from_dict({"learning_rte": 1e-4})


def test_resume_and_remaining_epochs():
    cfg = TrainConfig(**BASE)
    train = shlex.split(stage_commands(cfg, dataset_config="d", output_dir="o",
                                       output_name="n-r1", resume="o/n-000004-state",
                                       max_train_epochs=12)["train"])
    assert train[train.index("--resume") + 1] == "o/n-000004-state"
    assert train[train.index("--max_train_epochs") + 1] == "12"


def test_plain_torch_optimizers_and_wan22_in_bf16_are_accepted():
    """musubi looks any other optimizer name up in torch.optim, and takes the DiT's own dtype:
    both were refused."""
    assert validate(TrainConfig(**BASE, optimizer="SGD")) == []
    assert validate(TrainConfig(**{**BASE, "task": "t2v-A14B", "expert": "high",
                                   "mixed_precision": "bf16"})) == []


def test_no_persistent_workers_without_workers():
    """torch's DataLoader refuses persistent_workers with num_workers 0."""
    assert "--persistent_data_loader_workers" in cmds()["train"]
    assert "--persistent_data_loader_workers" not in cmds(data_loader_workers=0)["train"]


@pytest.mark.parametrize("dtype,expected", [("F16", "fp16"), ("BF16", "bf16"),
                                            ("F8_E4M3", "bf16")])
def test_mixed_precision_auto_is_read_from_the_dit_on_the_pod(tmp_path, dtype, expected):
    """Mixed precision must match the DiT file's dtype (musubi asserts it), which only the pod
    can read: the training command asks the file first."""
    import subprocess
    import sys

    from weights import write_dit

    dit = write_dit(tmp_path / "my dit's.safetensors", dtype)
    cfg = TrainConfig(**{**BASE, "dit": str(dit), "python": sys.executable})
    train = stage_commands(cfg, dataset_config="d", output_dir="o", output_name="n")["train"]
    assert train.count('--mixed_precision "$LORAD_MIXED_PRECISION"') == 2
    probe = train.split(" && ", 1)[0]
    shown = subprocess.run(["bash", "-c", probe + ' && echo "$LORAD_MIXED_PRECISION"'],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == [expected]


HEAD = ("running training / 学習開始\n  num train items / 学習画像、動画数: 12\n"
        "  num batches per epoch / 1epochのバッチ数: {batches}\n  num epochs / epoch数: 6\n")


@pytest.mark.parametrize("parent,state,batches,expected", [
    # saved by step under an epoch limit: musubi restarts its counters, so the rest is steps
    (dict(max_train_epochs=6, save_every_n_steps=5), "n-step00000010-state", 4,
     dict(max_train_steps=14, max_train_epochs=None, done=10)),
    # saved by epoch under a step limit: the steps not done yet
    (dict(max_train_epochs=None, max_train_steps=40), "n-000003-state", 4,
     dict(max_train_steps=28, max_train_epochs=None, done=12)),
    # gradient accumulation: batches per epoch are not steps per epoch
    (dict(max_train_epochs=6, save_every_n_steps=5,
          extra_args=["--gradient_accumulation_steps", "2"]), "n-step00000010-state", 8,
     dict(max_train_steps=14, max_train_epochs=None, done=10)),
    # saved by epoch under an epoch limit: the epochs left
    (dict(max_train_epochs=6), "n-000004-state", 4,
     dict(max_train_steps=None, max_train_epochs=2, done=16)),
])
def test_resume_passes_the_remaining_budget_in_the_states_unit(parent, state, batches,
                                                                 expected):
    """Resume trained too long when states were saved by step under an epoch limit, or by
    epoch under a step limit."""
    from lorad.training.trainers.musubi import Musubi

    cfg = TrainConfig(**{**BASE, **parent})
    plan = Musubi().resume(cfg, cfg, "/o", [state, "n-000001.safetensors"], "n", None,
                           log_head=HEAD.format(batches=batches))
    assert plan.config["max_train_steps"] == expected["max_train_steps"]
    assert plan.config["max_train_epochs"] == expected["max_train_epochs"]
    assert plan.done_steps == expected["done"]
    assert plan.config["extra_args"][-2:] == ["--resume", f"/o/{state}"]
    assert validate(TrainConfig(**plan.config)) == []
