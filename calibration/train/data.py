"""Training text for proxy models: an embedded default corpus and the user's own data.

A data source is described by a short spec (stored with every run, so results say what they
were trained on):

- ``stdlib`` (default): the bytes of the Python standard library's own ``.py`` source files
  of the running interpreter (test suites, idlelib and site-packages excluded), in sorted path
  order. Works offline on any machine. A file goes to the held-out part when the SHA-256 of
  its relative path, taken mod 20, is 0 (about 5% of files), so the split never depends on
  file order or sizes. Vocabulary: 256 byte values. On CPython 3.11 it is 674 files,
  about 11.4 MB (the exact size and a fingerprint are recorded per run).
- ``tokens:PATH[,dtype=uint16|uint32][,vocab=N]``: token ids in nanoGPT's layout, a flat
  little-endian binary file. PATH is a directory holding ``train.bin`` and ``val.bin``, or a
  single file whose last 5% is held out. ``dtype`` and ``vocab`` default to those of a
  ``meta.json`` beside the files (written by ``calibration.train.tokenize.write_token_dir``), else
  uint16 and max(token id) + 1.
- ``text:PATH[,tokenizer=bytes|hf:TOKENIZER_JSON|tiktoken:ENCODING]``: a text file or a
  directory of ``*.txt`` files; bytes by default, a Hugging Face ``tokenizer.json`` (its
  vocabulary), or a tiktoken encoding when tiktoken is installed. Files are split as for
  ``stdlib``.

Units: every size here is in tokens (bytes for the byte-level sources).
"""
from __future__ import annotations

import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError

_EXCLUDED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
HELDOUT_MOD = 20   # one file in 20 (by path hash) is held out
TAIL_FRACTION = 0.05


@dataclass(frozen=True)
class TokenData:
    """Train and held-out token streams (1-D integer arrays) and what they are."""

    spec: str
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    fingerprint: str      # SHA-256 prefix of both streams: runs on different data differ

    def describe(self) -> str:
        return (f"{self.spec}: {len(self.train):,} train + {len(self.val):,} held-out tokens, "
                f"vocab {self.vocab_size}, sha256 {self.fingerprint}")

    def check_fits(self, seq_len: int) -> None:
        """Raise AdvisorError unless both parts hold at least one sequence of seq_len + 1."""
        for name, arr in (("train", self.train), ("held-out", self.val)):
            if len(arr) < seq_len + 1:
                raise AdvisorError(f"data {self.spec}: {name} part has {len(arr)} tokens, "
                                   f"fewer than one sequence of {seq_len} + 1")


def is_heldout(relpath: str) -> bool:
    """Whether the file at ``relpath`` belongs to the held-out part (one in HELDOUT_MOD,
    by a hash of its path: the same split on every machine)."""
    return int(hashlib.sha256(relpath.encode()).hexdigest(), 16) % HELDOUT_MOD == 0


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _split_files(files: list[Path], root: Path, read) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for f in files:
        rel = f.relative_to(root).as_posix() if f != root else f.name
        (val if is_heldout(rel) else train).append(read(f))
    if not val and len(train) > 1:       # a tiny corpus: hold out its last file
        val.append(train.pop())
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return cat(train), cat(val)


def stdlib_files() -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not _EXCLUDED_DIRS.intersection(p.relative_to(root).parts[:-1]))
    return root, files


def _read_bytes(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def load_data(spec: str = "stdlib") -> TokenData:
    """Load a data source by its spec (see the module docstring); AdvisorError if unusable."""
    spec = (spec or "stdlib").strip()
    kind, _, rest = spec.partition(":")
    if kind == "stdlib" and not rest:
        root, files = stdlib_files()
        if not files:
            raise AdvisorError(f"no Python standard library sources found under {root}")
        train, val = _split_files(files, root, _read_bytes)
        return TokenData(spec, train, val, 256, _fingerprint(train, val))
    if kind == "tokens":
        path, opts = _parse_opts(spec, rest, {"dtype", "vocab"})
        return _load_tokens(spec, path, opts)
    if kind == "text":
        path, opts = _parse_opts(spec, rest, {"tokenizer"})
        return _load_text(spec, path, opts.get("tokenizer", "bytes"))
    raise AdvisorError(f"unknown data spec {spec!r}: use stdlib, tokens:PATH or text:PATH")


def _parse_opts(spec: str, rest: str, allowed: set[str]) -> tuple[Path, dict]:
    parts = rest.split(",")
    path = parts[0].strip()
    if not path:
        raise AdvisorError(f"data spec {spec!r} names no path")
    opts = {}
    for item in parts[1:]:
        k, eq, v = item.partition("=")
        if not eq or k.strip() not in allowed:
            raise AdvisorError(f"data spec {spec!r}: unknown option {item.strip()!r} "
                               f"(allowed: {', '.join(sorted(allowed))})")
        opts[k.strip()] = v.strip()
    return Path(path).expanduser(), opts


def _read_token_file(spec: str, path: Path, dtype) -> np.ndarray:
    if not path.is_file():
        raise AdvisorError(f"data {spec}: token file {path} does not exist")
    size = path.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise AdvisorError(f"data {spec}: {path} is {size} bytes, not a whole number of "
                           f"{dtype.name} tokens (corrupt or wrong dtype?)")
    return np.memmap(path, dtype=dtype, mode="r")


def _load_tokens(spec: str, path: Path, opts: dict) -> TokenData:
    meta = _token_meta(path)
    dtype_name = opts.get("dtype", meta.get("dtype", "uint16"))
    if dtype_name not in ("uint16", "uint32"):
        raise AdvisorError(f"data {spec}: dtype must be uint16 or uint32, got {dtype_name!r}")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    if path.is_dir():
        train = _read_token_file(spec, path / "train.bin", dtype)
        val = _read_token_file(spec, path / "val.bin", dtype)
    elif path.is_file():
        allt = _read_token_file(spec, path, dtype)
        cut = int(len(allt) * (1 - TAIL_FRACTION))
        train, val = allt[:cut], allt[cut:]
    else:
        raise AdvisorError(f"data {spec}: {path} does not exist")
    top = int(max(train.max(initial=0), val.max(initial=0)))
    vocab = (int(opts["vocab"]) if "vocab" in opts
             else int(meta["vocab_size"]) if "vocab_size" in meta else top + 1)
    if top >= vocab:
        raise AdvisorError(f"data {spec}: token id {top} is outside the vocabulary of {vocab} "
                           f"(corrupt file or wrong dtype?)")
    fp = _fingerprint(np.asarray(train[:1 << 20]), np.asarray(val[:1 << 20]),
                      np.array([len(train), len(val)]))
    return TokenData(spec, train, val, vocab, fp)


def _token_meta(path: Path) -> dict:
    """The ``meta.json`` of a token directory (dtype, vocab_size), {} when there is none."""
    import json

    f = path / "meta.json" if path.is_dir() else path.parent / "meta.json"
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise AdvisorError(f"{f} is not readable JSON: {exc}") from None
    return meta if isinstance(meta, dict) else {}


def _load_text(spec: str, path: Path, tokenizer: str) -> TokenData:
    if path.is_dir():
        root, files = path, sorted(path.rglob("*.txt"))
    elif path.is_file():
        root, files = path, [path]
    else:
        raise AdvisorError(f"data {spec}: {path} does not exist")
    if not files:
        raise AdvisorError(f"data {spec}: no .txt files under {path}")
    if tokenizer == "bytes":
        read, vocab = _read_bytes, 256
    elif tokenizer.startswith("tiktoken:"):
        try:
            import tiktoken
        except ImportError:
            raise AdvisorError("tokenizer tiktoken:... needs `pip install tiktoken`") from None
        enc = tiktoken.get_encoding(tokenizer.split(":", 1)[1])
        vocab = enc.n_vocab
        dt = np.uint16 if vocab <= 65536 else np.uint32
        read = lambda f: np.array(enc.encode_ordinary(f.read_text(errors="replace")), dtype=dt)
    elif tokenizer.startswith("hf:"):
        tok = load_tokenizer(tokenizer.split(":", 1)[1])
        vocab = tok.get_vocab_size()
        dt = dtype_for(vocab)
        read = lambda f: np.asarray(tok.encode(f.read_text(errors="replace"),
                                               add_special_tokens=False).ids, dtype=dt)
    else:
        raise AdvisorError(f"data {spec}: tokenizer must be bytes, hf:TOKENIZER_JSON or "
                           "tiktoken:ENCODING")
    if len(files) == 1:
        allt = read(files[0])
        cut = int(len(allt) * (1 - TAIL_FRACTION))
        train, val = allt[:cut], allt[cut:]
    else:
        train, val = _split_files(files, root, read)
    return TokenData(spec, train, val, vocab, _fingerprint(train, val))


def require_tokenizers():
    """The ``tokenizers`` module, or one AdvisorError line saying how to install it."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise AdvisorError("a BPE tokenizer needs `pip install tokenizers` (the calibrate "
                           "extra)") from None
    return tokenizers


def load_tokenizer(path):
    """A Hugging Face tokenizer.json (AdvisorError if missing or unreadable)."""
    require_tokenizers()
    from tokenizers import Tokenizer

    p = Path(path).expanduser()
    if not p.is_file():
        raise AdvisorError(f"tokenizer file {path} does not exist")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises its own Exception type
        raise AdvisorError(f"tokenizer file {path} is not a Hugging Face tokenizer.json: "
                           f"{str(exc).splitlines()[0][:200]}") from None


def dtype_for(vocab_size: int):
    """uint16 up to 65536 tokens, else uint32 (nanoGPT's layout)."""
    return np.uint16 if vocab_size <= 65536 else np.uint32


# --------------------------------------------------------------------------------------
# Batches (torch imported lazily)
# --------------------------------------------------------------------------------------

def windows(arr, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """Token windows of seq_len + 1 tokens at ``starts`` (any shape S): int64 array S + (T+1,),
    gathered with one fancy index. Inputs are ``[..., :-1]``, targets ``[..., 1:]``."""
    idx = np.asarray(starts, dtype=np.int64)[..., None] + np.arange(seq_len + 1)
    return np.asarray(arr[idx], dtype=np.int64)


class BatchSampler:
    """Random training windows (nanoGPT style), reproducible from a seed: the one source of
    training batches (single runs draw :meth:`next`; a stack draws each member's
    :meth:`next_starts` and gathers them together with :func:`windows`)."""

    def __init__(self, data: TokenData, batch_size: int, seq_len: int, seed: int):
        self.data, self.batch_size, self.seq_len = data, batch_size, seq_len
        self.rng = np.random.default_rng(seed)

    def next_starts(self) -> np.ndarray:
        """Start offsets of the next batch's windows (draws from the generator)."""
        return self.rng.integers(0, len(self.data.train) - self.seq_len, size=self.batch_size)

    def next(self, device):
        import torch

        t = torch.from_numpy(windows(self.data.train, self.next_starts(), self.seq_len))
        if str(device).startswith("cuda"):
            t = t.pin_memory().to(device, non_blocking=True)
        else:
            t = t.to(device)
        return t[:, :-1], t[:, 1:]


def heldout_windows(data: TokenData, seq_len: int, n_sequences: int) -> np.ndarray:
    """Start offsets of n evenly spaced held-out windows: the same for every run on this data."""
    span = len(data.val) - seq_len - 1
    n = max(1, min(n_sequences, span // max(1, seq_len) + 1))
    return np.linspace(0, max(span, 0), n).astype(np.int64)


def heldout_batches(data: TokenData, seq_len: int, n_sequences: int, batch_size: int, device):
    """Yield (x, y) tensors covering the fixed held-out windows."""
    import torch

    starts = heldout_windows(data, seq_len, n_sequences)
    for i in range(0, len(starts), batch_size):
        chunk = np.stack([np.asarray(data.val[s:s + seq_len + 1], dtype=np.int64)
                          for s in starts[i:i + batch_size]])
        t = torch.from_numpy(chunk).to(device)
        yield t[:, :-1], t[:, 1:]
