"""Real tokenizers for calibration data: train a byte-level BPE, and write nanoGPT token files.

A proxy of a user's model must see the user's tokens, so the data path is:

1. a tokenizer: the user's own (a Hugging Face ``tokenizer.json``), or a small byte-level BPE
   trained here with HF ``tokenizers`` on a text source (:func:`train_bpe`; the embedded
   stdlib corpus by default, so it works offline);
2. token files in nanoGPT's layout (:func:`write_token_dir`: ``train.bin`` and ``val.bin``,
   flat little-endian uint16, or uint32 for a vocabulary above 65536), which
   ``calibration.train.data`` reads as ``tokens:DIR``. The split of a text source into train and
   held-out files is the one of :mod:`calibration.train.data` (by path hash), so no held-out
   file's text is seen by the BPE trainer.

Units: vocabulary sizes and counts in tokens.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from calibration.train.data import require_tokenizers, dtype_for, load_tokenizer

MIN_VOCAB = 257                      # above the 256 byte symbols of a byte-level BPE
SPECIAL = "<|endoftext|>"            # one special token, id 0, separates documents


def text_files(source: str) -> tuple[list[Path], list[Path], Path]:
    """(train files, held-out files, root) of a text source: ``stdlib``, a ``.txt`` file or a
    directory (``*.txt``, or ``*.py`` when it holds no .txt), split as calibration.train.data does."""
    from calibration.train.data import is_heldout, stdlib_files

    if source == "stdlib":
        root, files = stdlib_files()
    else:
        root = Path(source).expanduser()
        if root.is_file():
            return [root], [], root
        if not root.is_dir():
            raise AdvisorError(f"text source {source} does not exist")
        files = sorted(root.rglob("*.txt")) or sorted(root.rglob("*.py"))
    if not files:
        raise AdvisorError(f"text source {source}: no text files")
    train, val = [], []
    for f in files:
        (val if is_heldout(f.relative_to(root).as_posix()) else train).append(f)
    if not val and len(train) > 1:
        val.append(train.pop())
    return train, val, root


def _read_texts(files: list[Path], max_bytes: int | None) -> list[str]:
    """The files' text, in order, until ``max_bytes`` characters have been read (None: all)."""
    texts, used = [], 0
    for f in files:
        texts.append(f.read_text(encoding="utf-8", errors="replace"))
        used += len(texts[-1])
        if max_bytes is not None and used >= max_bytes:
            break
    return texts


def train_bpe(source: str, vocab_size: int, out_path, *, max_bytes: int | None = None):
    """Train a byte-level BPE of ``vocab_size`` tokens on the training files of ``source``
    (at most ``max_bytes`` of them, in file order) and save it as a tokenizer.json."""
    require_tokenizers()
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
        raise AdvisorError(f"a byte-level BPE needs a vocabulary of at least {MIN_VOCAB}, "
                           f"got {vocab_size!r}")
    train, _, _ = text_files(source)
    texts = _read_texts(train, max_bytes)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return tok


def encode_files(tok, files: list[Path], max_bytes: int | None = None) -> np.ndarray:
    """Token ids of the files, each followed by the end-of-text token when the tokenizer has
    one, as one array of the tokenizer's dtype."""
    dt = dtype_for(tok.get_vocab_size())
    eot = tok.token_to_id(SPECIAL)
    parts = []
    texts = _read_texts(files, max_bytes)
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids = enc.ids + ([eot] if eot is not None else [])
        parts.append(np.asarray(ids, dtype=dt))
    return np.concatenate(parts) if parts else np.zeros(0, dt)


def write_token_dir(source: str, tokenizer_path, out_dir, *,
                    max_bytes: int | None = None) -> dict:
    """Tokenize a text source with a tokenizer.json into ``out_dir``/{train,val}.bin and a
    ``meta.json`` (vocabulary, dtype, counts, tokenizer path); returns the meta dict.
    ``max_bytes`` caps the training text (the held-out part gets a twentieth of it)."""
    tok = load_tokenizer(tokenizer_path)
    train, val, _ = text_files(source)
    if not val:
        raise AdvisorError(f"text source {source} is one file: give a directory, so files can "
                           "be held out")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = tok.get_vocab_size()
    tr = encode_files(tok, train, max_bytes)
    va = encode_files(tok, val, None if max_bytes is None else max(max_bytes // 20, 1))
    tr.astype(tr.dtype.newbyteorder("<")).tofile(out / "train.bin")
    va.astype(va.dtype.newbyteorder("<")).tofile(out / "val.bin")
    meta = {"vocab_size": vocab, "dtype": np.dtype(dtype_for(vocab)).name,
            "train_tokens": int(len(tr)), "val_tokens": int(len(va)),
            "tokenizer": str(tokenizer_path), "source": source}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
