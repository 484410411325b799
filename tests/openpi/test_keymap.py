"""Key-map presets: stock OpenPI observation layouts onto a policy's inputs and back."""

import numpy as np
import pytest

from policylink.wire import CameraSpec, DecodeError, ErrorCode, ImageError, Observation, WireError
from policylink.wire.openpi.keymap import PRESETS, KeyMap, to_rgb_hwc

TWO_CAMERAS = (CameraSpec("front", 4, 6), CameraSpec("wrist", 4, 6))
RNG = np.random.default_rng(0)


def _image(height: int = 4, width: int = 6) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_libero_layout_maps_to_the_policy_cameras_in_order():
    bound = KeyMap.from_config("libero").bind(TWO_CAMERAS, state_dim=8)
    front, wrist = _image(), _image()
    obs = bound.to_observation(
        {
            "observation/state": np.arange(8, dtype=np.float64),
            "observation/image": front,
            "observation/wrist_image": wrist,
            "prompt": "put the bowl on the plate",
        }
    )
    np.testing.assert_array_equal(obs.images["front"], front)
    np.testing.assert_array_equal(obs.images["wrist"], wrist)
    assert obs.state.dtype == np.float32 and obs.state.tolist() == list(range(8))
    assert obs.task == "put the bowl on the plate"


def test_aloha_layout_reads_the_nested_images_map_in_chw():
    cameras = (CameraSpec("cam_high", 4, 6), CameraSpec("cam_left_wrist", 4, 6))
    bound = KeyMap.from_config("aloha").bind(cameras, state_dim=14)
    high, left = _image(), _image()
    obs = bound.to_observation(
        {
            "state": np.ones(14),
            "images": {
                "cam_high": high.transpose(2, 0, 1),
                "cam_left_wrist": left.transpose(2, 0, 1),
            },
            "prompt": "fold the towel",
        }
    )
    np.testing.assert_array_equal(obs.images["cam_high"], high)
    np.testing.assert_array_equal(obs.images["cam_left_wrist"], left)
    assert obs.images["cam_high"].flags.c_contiguous


def test_droid_layout_concatenates_joint_and_gripper_state():
    bound = KeyMap.from_config("droid").bind(TWO_CAMERAS, state_dim=8)
    obs = bound.to_observation(
        {
            "observation/joint_position": np.arange(7.0),
            "observation/gripper_position": np.array([0.5]),
            "observation/exterior_image_1_left": _image(),
            "observation/wrist_image_left": _image(),
            "prompt": "wipe the table",
        }
    )
    assert obs.state.tolist() == [0, 1, 2, 3, 4, 5, 6, 0.5]


def test_slash_keys_decode_whether_sent_flat_or_nested():
    bound = KeyMap.from_config("libero").bind(TWO_CAMERAS[:1], state_dim=2)
    image = _image()
    nested = bound.to_observation({"observation": {"state": [1.0, 2.0], "image": image}})
    flat = bound.to_observation({"observation/state": [1.0, 2.0], "observation/image": image})
    np.testing.assert_array_equal(nested.images["front"], flat.images["front"])
    assert nested.state.tolist() == flat.state.tolist()


def test_explicit_camera_map_overrides_the_preset_order():
    key_map = KeyMap.from_config(
        {"preset": "libero", "images": {"front": "observation/wrist_image", "wrist": "cam2"}}
    )
    bound = key_map.bind(TWO_CAMERAS, state_dim=8)
    assert bound.images == {"front": "observation/wrist_image", "wrist": "cam2"}
    assert bound.state == (("observation/state", 8),)


def test_custom_state_keys_and_prompt_key_are_configurable():
    key_map = KeyMap.from_config(
        {"preset": "libero", "state": ["qpos", "gripper"], "state_sizes": [2, 1], "prompt": "task"}
    )
    bound = key_map.bind((), state_dim=3)
    obs = bound.to_observation({"qpos": [1, 2], "gripper": 3, "task": "stack"})
    assert obs.state.tolist() == [1, 2, 3] and obs.task == "stack"


def test_missing_key_error_names_the_key_and_what_was_sent():
    bound = KeyMap.from_config("libero").bind(TWO_CAMERAS, state_dim=8)
    with pytest.raises(DecodeError, match=r"no 'observation/state'.*\['image', 'state'\]"):
        bound.to_observation({"state": np.ones(8), "image": _image()})


def test_state_of_the_wrong_length_is_refused():
    bound = KeyMap.from_config("libero").bind((), state_dim=8)
    with pytest.raises(DecodeError, match="observation/state: expected 8 state values, got 7"):
        bound.to_observation({"observation/state": np.ones(7)})


def test_non_numeric_state_is_refused():
    bound = KeyMap.from_config("libero").bind((), state_dim=1)
    with pytest.raises(DecodeError, match="state must be numbers"):
        bound.to_observation({"observation/state": {"a": 1}})


def test_non_string_prompt_is_refused():
    bound = KeyMap.from_config("libero").bind((), state_dim=1)
    with pytest.raises(DecodeError, match="prompt must be a string"):
        bound.to_observation({"observation/state": [0.0], "prompt": 3})


def test_missing_prompt_leaves_the_task_to_the_server_default():
    bound = KeyMap.from_config("libero").bind((), state_dim=1)
    assert bound.to_observation({"observation/state": [0.0]}).task == ""


def test_float_images_in_unit_range_become_uint8():
    image = to_rgb_hwc(np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32), "img")
    assert image.dtype == np.uint8 and image.tolist() == [[[0, 128, 255]]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_image_with_non_finite_pixels_is_refused(bad: float):
    image = np.full((2, 2, 3), 0.5, np.float32)
    image[1, 1, 2] = bad
    with pytest.raises(ImageError, match="finite values"):
        to_rgb_hwc(image, "img")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((4, 6), np.uint8), "HxWx3 or 3xHxW"),
        (np.zeros((4, 6, 4), np.uint8), "HxWx3 or 3xHxW"),
        (np.zeros((4, 6, 3), np.int32), "uint8 .* or float"),
        ([[1, 2, 3]], "numpy array"),
        (np.zeros((0, 6, 3), np.uint8), "empty"),
    ],
)
def test_unusable_images_are_refused_with_the_reason(value: object, message: str):
    with pytest.raises(ImageError, match=message):
        to_rgb_hwc(value, "observation/image")


def test_binding_fails_when_the_preset_has_too_few_image_keys():
    cameras = (*TWO_CAMERAS, CameraSpec("side", 4, 6))
    with pytest.raises(ValueError, match=r"needs cameras \['front', 'wrist', 'side'\]"):
        KeyMap.from_config("libero").bind(cameras, state_dim=8)


def test_binding_fails_when_state_sizes_do_not_add_up_to_the_policy_state():
    with pytest.raises(ValueError, match=r"= 8 values but the policy's state_dim is 14"):
        KeyMap.from_config("droid").bind(TWO_CAMERAS, state_dim=14)


def test_binding_fails_when_an_explicit_camera_map_misses_a_camera():
    key_map = KeyMap.from_config({"images": {"front": "a"}})
    with pytest.raises(ValueError, match="one key per policy camera"):
        key_map.bind(TWO_CAMERAS, state_dim=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("franka", "preset 'franka' is unknown"),
        ({"preset": "libero", "colour": "rgb"}, r"unknown fields \['colour'\]"),
        ({"image_layout": "nhwc"}, "image_layout must be one of"),
        ({"state": ["a", "b"], "state_sizes": [1]}, "one size per key"),
        ({"images": ["images/{cam}", "extra"]}, "must be the only entry"),
    ],
)
def test_bad_key_map_configuration_is_refused_at_load(config: object, message: str):
    with pytest.raises(ValueError, match=message):
        KeyMap.from_config(config)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_client_side_encoding_round_trips_through_every_preset(name: str):
    state_dim = 8 if name != "aloha" else 14
    cameras = TWO_CAMERAS
    bound = KeyMap.from_config(name).bind(cameras, state_dim)
    original = Observation(
        state=np.arange(state_dim, dtype=np.float32),
        images={camera.name: _image() for camera in cameras},
        task="do the thing",
    )
    back = bound.to_observation(bound.to_openpi(original))
    np.testing.assert_array_equal(back.state, original.state)
    for camera in cameras:
        np.testing.assert_array_equal(back.images[camera.name], original.images[camera.name])
    assert back.task == "do the thing"


def test_aloha_client_encoding_writes_nested_chw_images_as_openpi_expects():
    bound = KeyMap.from_config("aloha").bind((CameraSpec("cam_high", 4, 6),), state_dim=2)
    payload = bound.to_openpi(
        Observation(state=np.zeros(2, np.float32), images={"cam_high": _image()}, task="t")
    )
    assert set(payload) == {"state", "images", "prompt"}
    assert payload["images"]["cam_high"].shape == (3, 4, 6)


def test_metadata_description_lists_each_bound_key():
    bound = KeyMap.from_config("libero").bind(TWO_CAMERAS, state_dim=8)
    assert bound.describe()["images"] == {
        "front": "observation/image",
        "wrist": "observation/wrist_image",
    }


def test_client_side_encoding_refuses_an_observation_missing_a_camera():
    bound = KeyMap.from_config("libero").bind(TWO_CAMERAS, state_dim=2)
    obs = Observation(state=np.zeros(2, np.float32), images={"front": _image()})
    with pytest.raises(WireError, match="no image for camera 'wrist'") as refused:
        bound.to_openpi(obs)
    assert refused.value.code is ErrorCode.CAMERA_MISMATCH
