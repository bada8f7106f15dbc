"""Coordinate check (Tensor Programs V): flat in width under muP, not under SP."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from calibration.spectral.coordcheck import coord_check

WIDTHS = (32, 64, 128, 256)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mup_activations_and_updates_are_flat_in_width():
    cc = coord_check("mup", widths=WIDTHS, steps=4)
    for kind in ("act", "delta"):
        layer, slope = cc.worst(kind)
        # over an 8x range of widths every layer stays within a factor 8^0.4 = 2.3
        assert abs(slope) < 0.4, f"muP {kind} of {layer} scales as width^{slope:.2f}"


def test_standard_parameterisation_fails_the_check():
    cc = coord_check("sp", widths=WIDTHS, steps=4)
    layer, slope = cc.worst("delta")
    assert slope > 1.0, f"SP updates should grow with width; worst {layer}: {slope:.2f}"
    assert cc.slopes("delta")["logits"] > 0.3     # SP logits' updates grow with width


def test_coordcheck_plot(tmp_path):
    pytest.importorskip("matplotlib")
    cc = coord_check("mup", widths=(32, 64), steps=3, seeds=(0,))
    cc.plot(tmp_path / "cc.png")
    assert (tmp_path / "cc.png").stat().st_size > 1000
