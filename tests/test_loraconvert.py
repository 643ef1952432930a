"""The converted LoRA: keys as convert_lora.py --target other writes them, alpha baked in."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors import safe_open

from lorad.publish import loraconvert
from lorad.publish.loraconvert import Tensor


def lora_file(path, dtype="F32", rank=4, alpha=2.0):
    rng = np.random.default_rng(0)
    tensors = {}
    for module in ("lora_unet_blocks_0_self_attn_q", "lora_unet_blocks_12_cross_attn_k_img",
                   "lora_unet_blocks_3_ffn_0"):
        tensors[f"{module}.alpha"] = Tensor.from_float32(dtype, np.array(alpha))
        tensors[f"{module}.lora_down.weight"] = Tensor.from_float32(
            dtype, rng.normal(0, 0.02, (rank, 8)))
        tensors[f"{module}.lora_up.weight"] = Tensor.from_float32(
            dtype, rng.normal(0, 0.02, (8, rank)))
    loraconvert.write(path, tensors, {"ss_network_dim": str(rank), "ss_network_alpha": str(alpha)})
    return tensors


def test_keys_and_alpha_scaling_match_convert_lora(tmp_path):
    src, dst = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    original = lora_file(src)
    assert loraconvert.convert(src, dst) == 6
    with safe_open(str(dst), framework="numpy") as fh:  # the reference reader agrees
        keys = set(fh.keys())
        assert fh.metadata() == {"ss_network_dim": "4", "ss_network_alpha": "2.0"}
        a = fh.get_tensor("diffusion_model.blocks.12.cross_attn.k_img.lora_A.weight")
        b = fh.get_tensor("diffusion_model.blocks.0.self_attn.q.lora_B.weight")
    assert keys == {f"diffusion_model.{m}.{p}.weight"
                    for m in ("blocks.0.self_attn.q", "blocks.12.cross_attn.k_img", "blocks.3.ffn.0")
                    for p in ("lora_A", "lora_B")}
    scale = np.sqrt(2.0 / 4)
    down = original["lora_unet_blocks_12_cross_attn_k_img.lora_down.weight"].as_float32()
    up = original["lora_unet_blocks_0_self_attn_q.lora_up.weight"].as_float32()
    np.testing.assert_allclose(a, down * scale, rtol=1e-6)
    np.testing.assert_allclose(b, up * scale, rtol=1e-6)


def test_bf16_stays_bf16_and_is_rounded_not_truncated(tmp_path):
    src, dst = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    original = lora_file(src, dtype="BF16", alpha=1.0)
    loraconvert.convert(src, dst)
    out, _ = loraconvert.read(dst)
    got = out["diffusion_model.blocks.3.ffn.0.lora_A.weight"]
    assert got.dtype == "BF16"
    want = original["lora_unet_blocks_3_ffn_0.lora_down.weight"].as_float32() * np.sqrt(1 / 4)
    np.testing.assert_allclose(got.as_float32(), want, rtol=2 ** -8)
    # the merged product, what inference computes, is preserved
    np.testing.assert_allclose(
        out["diffusion_model.blocks.3.ffn.0.lora_B.weight"].as_float32() @ got.as_float32(),
        original["lora_unet_blocks_3_ffn_0.lora_up.weight"].as_float32()
        @ original["lora_unet_blocks_3_ffn_0.lora_down.weight"].as_float32() / 4,
        rtol=0.02, atol=1e-7)


def test_an_already_converted_file_is_refused_clearly(tmp_path):
    src, dst, again = (tmp_path / n for n in ("a.safetensors", "b.safetensors", "c.safetensors"))
    lora_file(src)
    loraconvert.convert(src, dst)
    with pytest.raises(loraconvert.ConvertError, match="converted already"):
        loraconvert.convert(dst, again)


def test_bf16_keeps_nan_and_inf():
    values = np.array([np.nan, np.float32(np.uint32(0xFFFFFFFF).view(np.float32)), np.inf, -1.5],
                      dtype=np.float32)
    back = Tensor.from_float32("BF16", values).as_float32()
    assert np.isnan(back[0]) and np.isnan(back[1]) and back[2] == np.inf and back[3] == -1.5


@pytest.mark.parametrize("part", ["hada_w1_a", "lokr_w1"])
def test_a_loha_or_lokr_is_refused_not_converted_to_nothing(tmp_path, part):
    """convert_lora.py skips every key but lora_down/lora_up: a LyCORIS network came out empty
    (or, here, failed on its first key with no way forward)."""
    src = tmp_path / "lyco.safetensors"
    module = "lora_unet_blocks_0_self_attn_q"
    loraconvert.write(src, {f"{module}.{part}": Tensor.from_float32("F32", np.ones((4, 8))),
                            f"{module}.alpha": Tensor.from_float32("F32", np.array(4.0))}, {})
    kind = "LoHa" if part.startswith("hada") else "LoKr"
    with pytest.raises(loraconvert.ConvertError, match=f"{kind} .*--no-convert"):
        loraconvert.convert(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
