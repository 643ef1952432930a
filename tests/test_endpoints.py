"""Endpoints as data, against fal's own rules (services.md §2 and §6): what an output should be
with the endpoint's defaults, what a request costs, and which parameters are accepted."""

from __future__ import annotations

import pytest

from lorad.generation import endpoints

WAN22_T2V = "fal-ai/wan/v2.2-a14b/text-to-video/lora"
WAN22_I2V = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
WAN21_T2V, WAN21_I2V, FLUX = "fal-ai/wan-t2v-lora", "fal-ai/wan-i2v-lora", "fal-ai/flux-lora"


@pytest.mark.parametrize("endpoint_id", [WAN22_T2V, WAN22_I2V])
@pytest.mark.parametrize("params,frames,fps", [
    ({}, 161, 32.0),  # 81 frames at 16 fps, film-interpolated: one frame between each pair
    ({"num_frames": 17}, 33, 32.0),
    ({"interpolator_model": "none"}, 81, 16.0),
    ({"num_interpolated_frames": 0}, 81, 16.0),
    ({"num_frames": 17, "num_interpolated_frames": 3, "frames_per_second": 8}, 65, 32.0),
    ({"num_frames": 17, "num_interpolated_frames": 2, "adjust_fps_for_interpolation": False}, 49, 16.0),
])
def test_wan22_output_is_expected_with_fal_s_default_interpolation(endpoint_id, params, frames, fps):
    expected = endpoints.get(endpoint_id).expected_output(params)
    assert (expected["frames"], expected["fps"]) == (frames, fps)


def test_the_expectation_says_why_it_differs_from_what_was_asked():
    expected = endpoints.get(WAN22_T2V).expected_output({"num_frames": 17, "aspect_ratio": "9:16"})
    assert expected == {"frames": 33, "fps": 32.0, "asked_frames": 17, "asked_fps": 16,
                        "interpolation": "film, 1 frame between each pair", "aspect_ratio": "9:16"}
    assert endpoints.get(WAN22_T2V).expected_output({"interpolator_model": "none"}) == {
        "frames": 81, "fps": 16.0}


@pytest.mark.parametrize("endpoint_id", [WAN21_T2V, WAN21_I2V])
def test_wan21_does_not_interpolate(endpoint_id):
    assert endpoints.get(endpoint_id).expected_output({"num_frames": 90}) == {"frames": 90,
                                                                               "fps": 16.0}


def test_an_image_endpoint_expects_no_frames():
    assert endpoints.get(FLUX).expected_output({"prompt": "x"}) == {}


@pytest.mark.parametrize("params,price", [
    ({}, 0.035 * 1024 * 768 / 1e6),  # landscape_4_3, one image
    ({"image_size": "square_hd"}, 0.035 * 1024 * 1024 / 1e6),
    ({"image_size": "square", "num_images": 4}, 4 * 0.035 * 512 * 512 / 1e6),
    ({"image_size": {"width": 2048, "height": 1536}, "num_images": 2}, 2 * 0.035 * 2048 * 1536 / 1e6),
    ({"image_size": {"width": 1000}}, 0.035 * 1000 * 512 / 1e6),  # fal's ImageSize: 512 if left out
])
def test_flux_is_priced_per_megapixel_of_each_image(params, price):
    endpoint = endpoints.get(FLUX)
    assert endpoint.price(params) == pytest.approx(price, abs=1e-6)  # kept to 6 decimals
    assert endpoint.price_verified


@pytest.mark.parametrize("params,price", [
    ({}, 0.75),  # 720p, 81 frames: 1 billing unit
    ({"resolution": "720p", "num_frames": 81}, 0.75),
    ({"resolution": "480p"}, 0.375),  # 0.5 unit
    ({"num_frames": 82}, 0.75 * 1.25),  # more than 81 frames: 1.25x the units
    ({"resolution": "480p", "num_frames": 100}, 0.75 * 0.5 * 1.25),
])
def test_wan21_i2v_is_priced_in_billing_units(params, price):
    endpoint = endpoints.get(WAN21_I2V)
    assert endpoint.price(params) == pytest.approx(price)
    assert not endpoint.price_verified and "UNVERIFIED" in endpoint.price_note


def test_other_prices_are_unchanged():
    assert endpoints.get(WAN21_T2V).price({"resolution": "480p", "num_frames": 100}) == 0.75
    assert endpoints.get(WAN22_T2V).price({}) == pytest.approx(0.1 * 81 / 16)
    assert endpoints.get(WAN22_T2V).price({"num_frames": 17}) == pytest.approx(0.1 * 17 / 16)


def test_which_prices_are_verified():
    verified = {e.id: e.price_verified for e in endpoints.ENDPOINTS.values()}
    assert verified == {WAN21_T2V: True, WAN21_I2V: False, WAN22_T2V: True, WAN22_I2V: False,
                        FLUX: True, endpoints.MARLIN: False, endpoints.ROUTER_VIDEO: False,
                        endpoints.ROUTER_VISION: False,  # captioners: tokens, estimated
                        endpoints.TRAINER_SAMPLE: True}  # a trainer's own samples: free
    assert all(e.price_note for e in endpoints.ENDPOINTS.values())


@pytest.mark.parametrize("params", [
    {"image_size": "portrait_16_9"},
    {"image_size": {"width": 1280, "height": 720}},
    {"image_size": {"width": 14142}},
    {"acceleration": "none"}, {"acceleration": "regular"},
    {"sync_mode": True, "num_images": 4},
])
def test_flux_accepts_image_size_objects_and_acceleration(params):
    assert endpoints.get(FLUX).validate({"prompt": "a cat", **params}) == []


@pytest.mark.parametrize("params,problem", [
    ({"image_size": "huge"}, "image_size must be one of square_hd, square, portrait_4_3"),
    ({"image_size": {"width": 0, "height": 512}}, "image_size width must be 1-14142, got 0"),
    ({"image_size": {"width": 512, "height": 20000}}, "image_size height must be 1-14142, got 20000"),
    ({"image_size": {"width": 512.5}}, "image_size width must be a whole number of pixels"),
    ({"image_size": {"w": 512}}, "image_size takes width and height only, not w"),
    ({"image_size": [512, 512]}, 'or {"width": W, "height": H}'),
    ({"acceleration": "high"}, "acceleration must be one of none, regular"),
])
def test_flux_refuses_bad_sizes_and_accelerations(params, problem):
    problems = endpoints.get(FLUX).validate({"prompt": "a cat", **params})
    assert len(problems) == 1 and problem in problems[0]
