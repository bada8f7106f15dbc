"""Coordinate check in depth: the residual stream's updates stay put under CompleteP and
Depth-muP, and grow with depth without depth scaling (alpha = 0), as theory says they must."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from calibration.spectral.coordcheck import depth_coord_check

DEPTHS = (2, 4, 8, 16)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_completep_updates_are_flat_in_depth():
    cc = depth_coord_check(1.0, depths=DEPTHS, steps=4)
    for where in ("last", "mid"):
        slope = cc.slope("delta", where)
        # over an 8x range of depths the change stays within a factor 8^0.3 = 1.9
        assert abs(slope) < 0.3, f"CompleteP: change at the {where} block ~ depth^{slope:.2f}"
    # and the size per block index exists for every block of every depth
    assert all(cc.delta[L].shape == (L, 4) for L in DEPTHS)


def test_no_depth_scaling_fails_the_check():
    # Adam moves each block's output by about the same at any depth, so without depth scaling
    # the last block's output moves ~ depth (theory: slope 1; measured here about 0.8)
    cc = depth_coord_check(0.0, depths=DEPTHS, steps=4)
    assert cc.slope("delta", "last") > 0.5
    assert cc.slope("delta", "mid") > 0.5
    assert cc.series("delta", "last")[-1] > 2.5 * cc.series("delta", "last")[0]


def test_depth_mup_is_at_most_mildly_depth_dependent():
    cc = depth_coord_check(0.5, depths=(2, 8), steps=4, seeds=(0,))
    assert abs(cc.slope("delta", "last")) < 0.45


def test_the_base_depth_is_the_same_model_for_every_alpha():
    a = depth_coord_check(0.0, depths=(2,), steps=3, seeds=(0,))
    b = depth_coord_check(1.0, depths=(2,), steps=3, seeds=(0,))
    assert (a.delta[2] == b.delta[2]).all() and (a.act[2] == b.act[2]).all()


def test_depth_coordcheck_plot(tmp_path):
    pytest.importorskip("matplotlib")
    cc = depth_coord_check(1.0, depths=(2, 4), steps=2, seeds=(0,))
    cc.plot(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 1000
