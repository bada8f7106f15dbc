"""Training data: the embedded stdlib corpus and user token/text files."""
import numpy as np
import pytest

from advisor.errors import AdvisorError
from calibration.train.data import heldout_windows, load_data


def test_stdlib_corpus_is_split_deterministically_and_disjointly():
    d = load_data("stdlib")
    assert d.vocab_size == 256
    assert len(d.train) > 1_000_000 and len(d.val) > 50_000
    assert 0.01 < len(d.val) / (len(d.train) + len(d.val)) < 0.15
    load_data.cache_clear()
    again = load_data("stdlib")
    assert again.fingerprint == d.fingerprint
    # a held-out window's bytes do not appear verbatim in the training stream
    s = heldout_windows(d, 64, 4)[1]
    window = bytes(np.asarray(d.val[s:s + 64]))
    assert window not in bytes(np.asarray(d.train))


def test_nanogpt_token_directory(tmp_path):
    rng = np.random.default_rng(0)
    rng.integers(0, 1000, 5000).astype(np.uint16).tofile(tmp_path / "train.bin")
    rng.integers(0, 1000, 600).astype(np.uint16).tofile(tmp_path / "val.bin")
    d = load_data(f"tokens:{tmp_path}")
    assert (len(d.train), len(d.val)) == (5000, 600)
    assert d.vocab_size <= 1000
    d = load_data(f"tokens:{tmp_path},vocab=50304")
    assert d.vocab_size == 50304


def test_single_token_file_holds_out_its_tail(tmp_path):
    np.arange(10_000, dtype=np.uint32).tofile(tmp_path / "all.bin")
    d = load_data(f"tokens:{tmp_path / 'all.bin'},dtype=uint32")
    assert len(d.val) == 500 and d.val[0] == 9500


@pytest.mark.parametrize("content, spec_extra, msg", [
    (b"\x01\x00\x02", "", "not a whole number"),                   # odd size for uint16
    (np.array([5, 70000], np.uint32).tobytes() * 10, ",dtype=uint32,vocab=50000", "outside the vocabulary"),
])
def test_corrupt_token_files_are_rejected(tmp_path, content, spec_extra, msg):
    (tmp_path / "x.bin").write_bytes(content)
    with pytest.raises(AdvisorError, match=msg):
        load_data(f"tokens:{tmp_path / 'x.bin'}{spec_extra}")


def test_missing_data_is_rejected(tmp_path):
    with pytest.raises(AdvisorError, match="does not exist"):
        load_data(f"tokens:{tmp_path / 'nope.bin'}")
    with pytest.raises(AdvisorError, match="does not exist"):
        load_data(f"text:{tmp_path / 'nope'}")
    with pytest.raises(AdvisorError, match="unknown data spec"):
        load_data("wikipedia")


def test_text_files_as_bytes(tmp_path):
    for i in range(30):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document {i} " * 50)
    d = load_data(f"text:{tmp_path}")
    assert d.vocab_size == 256
    assert len(d.train) + len(d.val) == sum(len(f"document {i} " * 50) for i in range(30))
    assert len(d.val) > 0


def test_too_little_data_for_a_sequence(tmp_path):
    (tmp_path / "t.txt").write_text("tiny")
    d = load_data(f"text:{tmp_path / 't.txt'}")
    with pytest.raises(AdvisorError, match="fewer than one sequence"):
        d.check_fits(64)
