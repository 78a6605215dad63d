"""Letterbox geometry and the exact input tensor the manifest asks for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.vision.manifest import InputSpec
from agent.vision.preprocess import Letterbox, Preprocessor


@given(
    st.integers(16, 4000),
    st.integers(16, 4000),
    st.integers(32, 1280),
    st.integers(32, 1280),
    st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_letterbox_round_trip(src_w: int, src_h: int, dst_w: int, dst_h: int, xy: list[float]) -> None:
    box = Letterbox.fit(src_w, src_h, dst_w, dst_h)
    inner_w, inner_h = box.inner_size
    assert inner_w <= dst_w and inner_h <= dst_h
    assert inner_w == dst_w or inner_h == dst_h  # fills one side: aspect ratio kept, no wasted scale
    norm = np.asarray(
        [[min(xy[0], xy[2]), min(xy[1], xy[3]), max(xy[0], xy[2]), max(xy[1], xy[3])]], np.float32
    )
    back = box.to_normalized(box.to_input(norm))
    np.testing.assert_allclose(back, norm, atol=1e-4)


def test_letterbox_pads_the_short_side_evenly() -> None:
    box = Letterbox.fit(1920, 1080, 640, 640)
    assert box.scale == pytest.approx(1 / 3)
    assert (box.pad_x, box.pad_y) == (0, 140)
    # the image's bottom-right corner lands where the padding starts
    np.testing.assert_allclose(box.to_input(np.asarray([[0, 0, 1, 1]], np.float32)), [[0, 140, 640, 500]])


def test_nchw_rgb_scaled_tensor_with_grey_border() -> None:
    prep = Preprocessor(InputSpec(width=64, height=64))
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in OpenCV's BGR order
    box = prep(frame)
    t = prep.tensor
    assert t.shape == (1, 3, 64, 64) and t.dtype == np.float32
    assert (box.pad_x, box.pad_y) == (0, 16)
    np.testing.assert_allclose(t[0, :, :16, :], 114 / 255, rtol=1e-6)  # letterbox border
    np.testing.assert_allclose(t[0, 2, 16:48, :], 1.0)  # blue is the third channel in RGB
    np.testing.assert_allclose(t[0, 0, 16:48, :], 0.0)


def test_nhwc_bgr_uint8_and_mean_std() -> None:
    frame = np.full((10, 10, 3), (10, 20, 30), np.uint8)
    prep = Preprocessor(InputSpec(width=10, height=10, layout="NHWC", color="BGR", dtype="uint8", scale=1.0))
    prep(frame)
    assert prep.tensor.shape == (1, 10, 10, 3) and prep.tensor.dtype == np.uint8
    assert prep.tensor[0, 5, 5].tolist() == [10, 20, 30]
    spec = InputSpec(width=10, height=10, scale=1.0, mean=(30, 20, 10), std=(2, 4, 5))
    norm = Preprocessor(spec)
    norm(frame)
    np.testing.assert_allclose(norm.tensor[0, :, 5, 5], [0.0, 0.0, 0.0])  # RGB (30,20,10) minus mean


def test_buffers_are_reused_across_frames_of_a_new_size() -> None:
    prep = Preprocessor(InputSpec(width=64, height=64))
    tensor = prep.tensor
    prep(np.full((64, 32, 3), 200, np.uint8))  # pads left and right
    prep(np.full((32, 64, 3), 200, np.uint8))  # now top and bottom: the old side border must be gone
    assert prep.tensor is tensor
    np.testing.assert_allclose(prep.tensor[0, 0, 32, :], 200 / 255, rtol=1e-6)
    np.testing.assert_allclose(prep.tensor[0, 0, 0, :], 114 / 255, rtol=1e-6)


@pytest.mark.parametrize(
    ("size", "spec"),
    [
        ((64, 48), InputSpec(width=64, height=64)),  # the input's width: split as it is, no canvas copy
        ((90, 40), InputSpec(width=64, height=64, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))),
        ((30, 50), InputSpec(width=64, height=64, color="BGR", resize="area")),  # padded left and right
        ((50, 40), InputSpec(width=64, height=64, color="GRAY")),
    ],
)
def test_planes_hold_the_exact_float_arithmetic_of_the_manifest(
    size: tuple[int, int], spec: InputSpec
) -> None:
    # The tables the channel planes go through must give bit for bit what (x * scale - mean) / std
    # gives in float32, on a frame that is a strided view (a crop), as snapshots pass.
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (size[1] + 10, size[0] + 10, 3), np.uint8)
    frame = big[5 : 5 + size[1], 3 : 3 + size[0]]
    prep = Preprocessor(spec)
    for _ in range(2):  # the second frame takes the steady path (border already written)
        box = prep(frame)
    inner_w, inner_h = box.inner_size
    image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[..., None] if spec.color == "GRAY" else frame
    if (inner_w, inner_h) != size:
        area = spec.resize == "area" and box.scale < 1
        image = cv2.resize(
            image, (inner_w, inner_h), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR
        )
        image = image.reshape(inner_h, inner_w, -1)
    if spec.color == "RGB":
        image = image[..., ::-1]
    std = np.asarray(spec.std, np.float32)
    mul, add = (
        (spec.scale / std).astype(np.float32),
        (-np.asarray(spec.mean, np.float32) / std).astype(np.float32),
    )
    want = image.astype(np.float32) * mul[: image.shape[2]] + add[: image.shape[2]]
    got = prep.tensor[0][:, box.pad_y : box.pad_y + inner_h, box.pad_x : box.pad_x + inner_w]
    np.testing.assert_array_equal(got, want.transpose(2, 0, 1))
    border = 114 * mul[0] + add[0]
    assert (prep.tensor[0, 0, :, : box.pad_x] == border).all() and (
        prep.tensor[0, 0, : box.pad_y] == border
    ).all()
