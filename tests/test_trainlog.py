"""The training-log parser against musubi-tuner's exact output (reference §3)."""

from __future__ import annotations

import math

import pytest

from lorad.training.logparse import (
    Checkpoint,
    Epoch,
    Failure,
    ModelSaved,
    Progress,
    TotalSteps,
)
from lorad.training.trainers.musubi.log import parse_line
from lorad.training.trainers.musubi.log import parser as musubi_parser

LOG = (
    "accelerator device: cuda\n"
    "import network module: networks.lora_wan\n"
    "running training / 学習開始\n"
    "  total optimization steps / 学習ステップ数: 96\n"
    "steps:   0%|          | 0/96 [00:00<?, ?it/s]"
    "\rsteps:  17%|█▋        | 16/96 [06:59<34:59, 26.24s/it, avr_loss=0.078]"
    "\rsteps:  18%|█▊        | 17/96 [07:39<35:35, 27.04s/it, avr_loss=0.078]"
    "\rsteps:  18%|█▊        | 17/96 [07:39<35:35, 27.04s/it, avr_loss=0.0695]"
    "\n\nepoch 2/16\n"
    "\nsaving checkpoint: /workspace/out/mylora-000002.safetensors\n"
    "INFO:musubi_tuner.training.trainer_base:saving state at epoch 2\n"
    "steps:  19%|█▉        | 18/96 [07:59<01:02:00,  2.50it/s, avr_loss=1.5e-5]"
    "\rsteps:  20%|█▉        | 19/96 [08:01<35:00, 2.50it/s, avr_loss=nan]\n"
    "INFO:musubi_tuner.training.trainer_base:model saved.\n"
)


def events_of(chunks) -> list:
    parser = musubi_parser()
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def settled(events) -> list[str]:
    """Event reprs without the early report of a bar that is then reported again when its line
    ends (the same event twice in a row)."""
    out: list[str] = []
    for e in map(repr, events):  # repr: nan != nan
        if not out or out[-1] != e:
            out.append(e)
    return out


def test_every_event_kind_is_recognised():
    events = events_of([LOG.encode()])
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["TotalSteps", "Progress", "Progress", "Progress", "Progress", "Epoch",
                     "Checkpoint", "StateSaved", "Progress", "Progress", "ModelSaved"]
    assert events[0] == TotalSteps(96)
    p = events[2]
    assert (p.step, p.total, p.elapsed, p.remaining) == (16, 96, 419.0, 2099.0)
    assert p.rate == pytest.approx(1 / 26.24) and p.avr_loss == 0.078
    assert events[4].avr_loss == 0.0695  # the second print of step 17 carries its own loss
    assert events[5] == Epoch(2, 16)
    assert events[6] == Checkpoint("/workspace/out/mylora-000002.safetensors")
    assert events[8].remaining == 3720.0 and events[8].rate == 2.5 and events[8].avr_loss == 1.5e-5
    assert math.isnan(events[9].avr_loss)
    assert isinstance(events[-1], ModelSaved)
    assert events[1] == Progress(0, 96, 0.0, None, None, None)


@pytest.mark.parametrize("size", [1, 3, 7, 64, 1000])
def test_any_chunking_gives_the_same_events(size):
    data = LOG.encode()
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    assert settled(events_of(chunks)) == settled(events_of([data]))


def test_restart_at_the_saved_offset_neither_loses_nor_repeats():
    data = LOG.encode()
    whole = settled(events_of([data]))
    for cut in range(0, len(data), 37):
        first = musubi_parser()
        got = first.feed(data[:cut])
        second = musubi_parser(first.offset)  # a new connection reads from the saved offset
        got += second.feed(data[first.offset:])
        assert settled(got) == whole, cut


@pytest.mark.parametrize("line,kind", [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 48.00 MiB. GPU 0 has a "
     "total capacity of 23.65 GiB", "oom"),
    ("Traceback (most recent call last):", "traceback"),
])
def test_failures(line, kind):
    assert parse_line(line) == Failure(kind, line)


def test_unrelated_lines_are_ignored():
    for line in ["INFO:musubi_tuner.dataset.image_video_dataset:epoch is incremented. "
                 "current_epoch: 0, epoch: 1", "prepare optimizer, data loader etc.", ""]:
        assert parse_line(line) is None


def test_traceback_glued_to_the_last_bar_is_found():
    line = "steps:  50%|█████     | 5/10 [00:01<00:01,  4.00it/s, avr_loss=0.111]Traceback " \
           "(most recent call last):"
    events = musubi_parser().feed((line + "\n").encode())
    assert [type(e).__name__ for e in events] == ["Progress", "Failure"]
    assert events[1].kind == "traceback"


def test_a_finished_bar_is_reported_before_the_next_one_ends_it():
    """tqdm ends a bar's line only when it draws the next (a step later): waiting for that
    would make the loss a whole step late."""
    parser = musubi_parser()
    bar = "steps:  17%|█▋        | 16/96 [06:59<34:59, 26.24s/it, avr_loss=0.078]"
    assert parser.feed(("\r" + bar[:40]).encode()) == []  # half a bar: nothing yet
    events = parser.feed(bar[40:].encode())
    assert [(e.step, e.avr_loss) for e in events] == [(16, 0.078)]
    assert parser.feed(b"") == []  # reported once
    assert parser.offset == 1  # the unfinished line is still read again after a reconnect


def test_the_loss_is_found_after_the_key_norm_figures():
    """With --scale_weight_norms musubi puts its key-norm figures before avr_loss; the loss was
    lost, and with it the NaN stop."""
    line = ("steps:  20%|█▉        | 19/96 [08:01<35:00, 2.50it/s, Average key norm=0.957, "
            "Keys Scaled=2, avr_loss=0.0695]")
    assert parse_line(line).avr_loss == 0.0695
    nan = line.replace("avr_loss=0.0695", "avr_loss=nan")
    assert math.isnan(parse_line(nan).avr_loss)


def test_a_bar_cut_short_gives_no_truncated_loss():
    cut = "steps:  20%|█▉        | 19/96 [08:01<35:00, 2.50it/s, avr_loss=0.06"
    event = parse_line(cut)
    assert isinstance(event, Progress) and event.step == 19 and event.avr_loss is None


def test_the_log_tail_shows_a_redrawn_bar_once_as_a_terminal_would():
    """Every tqdm step showed twice in the log tail (drawn by update, then by set_postfix)."""
    from lorad.training.logparse import as_terminal

    chunks = ["loading\nsteps:   1%| 1/96 [00:01<01:30, avr_loss=0.1]",
              "\rsteps:   1%| 1/96 [00:01<01:30, avr_loss=0.09]\rsteps:   2%| 2/96",
              " [00:02<01:29, avr_loss=0.08]\nepoch 1/4\n"]
    tail: list[str] = []
    for chunk in chunks:  # a read may end in the middle of a bar
        tail = as_terminal(tail, chunk, 10)
    assert tail == ["loading", "steps:   2%| 2/96 [00:02<01:29, avr_loss=0.08]", "epoch 1/4", ""]
