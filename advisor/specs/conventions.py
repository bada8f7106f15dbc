"""A proxy's conventions: what a run's (and a law's) LR and weight decay mean. One record.

A law fitted on proxy runs is only meaningful with the conventions of those runs: whether its
LR is every group's peak LR (``peak``) or muP's base-width LR (``mup_base``: hidden matrices
train at lr x base_width / width), the muP base width and depth, the depth exponent, the
hidden matrices' weight-decay width rule, the optimizer (and Muon's width convention) and the
sequence length. :class:`Conventions` holds them, typed and frozen; a run's are derived from its
``RunSpec`` and proxy configuration (:func:`of_run`), a law set's are read from and written to
its ``conventions`` and ``mup`` sections (:func:`of_lawset`, :meth:`Conventions.lawset_fields`),
and a run table carries them. Validation of each field is the rules' own
(``advisor.rules.optim_rules``): one check and one message per field.

Units: widths in channels, depths in residual blocks, ``seq_len`` in tokens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import check_alpha, check_muon_convention, check_wd_rule

LR_CONVENTIONS = ("peak", "mup_base")
OPTIMIZERS = ("adamw", "muadamw", "muon")      # a run's (advisor.specs.runspec.RunSpec)
# Step Law's CSV layout (Li et al. 2025, shared/data/external/steplaw_dense_lr_bs_loss.csv):
# batch ``bs`` in sequences of 2048 tokens. The one home of that number.
STEPLAW_SEQ_LEN = 2048


def _positive_int(name: str, v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise AdvisorError(f"{name} must be a positive integer, got {v!r}")
    return v


@dataclass(frozen=True)
class Conventions:
    """What an LR and a weight decay mean (see the module docstring). ``None``: not recorded.

    ``lr``: ``peak`` | ``mup_base``; ``base_width`` (channels) and ``base_depth`` (blocks):
    the muP base model; ``depth_alpha``: residual branches x (depth/base_depth)^-alpha;
    ``wd_rule``: a key of ``advisor.rules.optim_rules.WD_WIDTH_RULES``; ``optimizer``: a
    run's (adamw | muadamw | muon) or a results file's column; ``muon_convention``: a key of ``MUON_CONVENTIONS`` (muon only);
    ``seq_len``: tokens per sequence of the runs.
    """

    lr: str = "peak"
    base_width: int | None = None
    base_depth: int | None = None
    depth_alpha: float | None = None
    wd_rule: str | None = None
    optimizer: str | None = None
    muon_convention: str | None = None
    seq_len: int | None = None

    def __post_init__(self):
        if self.lr not in LR_CONVENTIONS:
            raise AdvisorError(f"lr_convention must be one of {', '.join(LR_CONVENTIONS)}, "
                               f"got {self.lr!r}")
        _positive_int("base_width", self.base_width)
        _positive_int("base_depth", self.base_depth)
        _positive_int("seq_len", self.seq_len)
        if self.depth_alpha is not None:
            object.__setattr__(self, "depth_alpha", check_alpha(self.depth_alpha))
        if self.wd_rule is not None:
            check_wd_rule(self.wd_rule)
        if self.optimizer is not None and (not isinstance(self.optimizer, str)
                                           or not self.optimizer):
            raise AdvisorError(f"optimizer must be a name, got {self.optimizer!r}")
        if self.muon_convention is not None:
            check_muon_convention(self.muon_convention)
            if self.optimizer != "muon":
                raise AdvisorError("a Muon convention needs optimizer muon")
        if self.lr == "mup_base" and self.base_width is None:
            raise AdvisorError("an LR in the mup_base convention needs its muP base width")

    # ----------------------------------------------------------------------------------
    @property
    def optimizer_label(self) -> str | None:
        """One word: adamw, muadamw or muon-<convention> (a law set's conventions.optimizer)."""
        if self.optimizer == "muon":
            return f"muon-{self.muon_convention or 'spectral'}"
        return self.optimizer

    @property
    def is_muon(self) -> bool:
        return self.optimizer == "muon"

    def with_(self, **kw) -> "Conventions":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Conventions":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise AdvisorError(f"unknown convention field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def lawset_fields(self) -> tuple[dict, dict]:
        """(entries of a law set's ``conventions``, entries of its ``mup`` section): the
        record as a law set writes it (schema recipes/laws/SCHEMA.md); read back by
        :func:`of_lawset`."""
        conv = {"learning_rate": self.lr}
        if self.optimizer_label:
            conv["optimizer"] = self.optimizer_label
        if self.seq_len is not None:
            conv["seq_len"] = self.seq_len
        mup = {}
        if self.base_width is not None:
            mup["base_width"] = int(self.base_width)
        if self.base_depth is not None:
            mup["base_depth"] = int(self.base_depth)
        if self.depth_alpha is not None:
            mup["depth_alpha"] = self.depth_alpha
        if self.wd_rule is not None:
            mup["wd_rule"] = self.wd_rule
        return conv, mup


def parse_optimizer_label(label) -> tuple[str | None, str | None]:
    """(optimizer, Muon convention) of a one-word label (``muon-spectral`` -> muon, spectral)."""
    if label in (None, ""):
        return None, None
    label = str(label)
    if label.startswith("muon-"):
        return "muon", check_muon_convention(label[len("muon-"):])
    if label == "muon":
        return "muon", "spectral"
    return label, None


def of_lawset(conventions, mup) -> Conventions:
    """The record a law set's ``conventions`` and ``mup`` sections state (see
    :meth:`Conventions.lawset_fields`). A ``mup_base`` set without ``mup.base_width`` is
    refused: its LR has no meaning without it."""
    conventions, mup = dict(conventions or {}), dict(mup or {})
    if mup.get("wd_rule") is not None:
        check_wd_rule(mup["wd_rule"], name="mup.wd_rule")
    if conventions.get("learning_rate") == "mup_base" and mup.get("base_width") is None:
        raise AdvisorError("conventions.learning_rate mup_base (a muP base LR) needs "
                           "mup.base_width, the width it was tuned at")
    opt, muon = parse_optimizer_label(conventions.get("optimizer"))
    return Conventions(lr=conventions.get("learning_rate", "peak"),
                       base_width=mup.get("base_width"), base_depth=mup.get("base_depth"),
                       depth_alpha=mup.get("depth_alpha"), wd_rule=mup.get("wd_rule"),
                       optimizer=opt, muon_convention=muon, seq_len=conventions.get("seq_len"))


def of_run(spec, cfg) -> Conventions:
    """A run's conventions from its ``RunSpec`` and its ``ProxyConfig`` (base width and
    depth, depth exponent)."""
    mup_base = spec.lr_convention == "mup_base"
    muon = spec.optimizer == "muon"
    return Conventions(lr=spec.lr_convention,
                       base_width=int(cfg.base_width) if mup_base else None,
                       base_depth=int(cfg.base_depth) if mup_base else None,
                       depth_alpha=float(getattr(cfg, "depth_alpha", 0.0) or 0.0)
                       if mup_base else None,
                       wd_rule=spec.wd_rule if mup_base else None,
                       optimizer=spec.optimizer,
                       muon_convention=spec.muon_convention if muon else None,
                       seq_len=int(spec.seq_len))
