import numpy as np

from preprocess.quantise import dequantise_flow, quantise_flow


def test_quantise_maps_bound_to_byte_range():
    q = quantise_flow(np.array([-20.0, 0.0, 20.0, -35.0, 50.0], np.float32), 20.0)
    assert q.dtype == np.uint8
    # -20 -> 0, +20 -> 255, 0 -> round(127.5) = 128 (round half to even), outside clipped
    assert q.tolist() == [0, 128, 255, 0, 255]


def test_round_trip_error_is_at_most_half_a_step():
    flow = np.linspace(-20, 20, 10001, dtype=np.float32)
    back = dequantise_flow(quantise_flow(flow, 20.0), 20.0)
    step = 40.0 / 255.0
    assert np.abs(back - flow).max() <= step / 2 + 1e-5
    assert abs(step - 0.15686) < 1e-4


def test_other_bound():
    flow = np.array([1.0, -1.0, 3.0], np.float32)
    q = quantise_flow(flow, 2.0)
    assert q.tolist() == [191, 64, 255]  # (1+2)*255/4 = 191.25, (-1+2)*255/4 = 63.75
    np.testing.assert_allclose(dequantise_flow(q, 2.0), [0.99608, -0.99608, 2.0], atol=1e-4)
