"""One training run's settings as pure data (no torch): ``RunSpec``.

A plan (advisor.specs.plan) expands into RunSpecs; the results store keeps each one's
:meth:`RunSpec.settings` and keys it by :attr:`RunSpec.run_id`; ``calibration.train.single`` trains it.

Units: ``batch_size`` in sequences, ``seq_len`` and ``tokens`` in tokens, ``lr`` the peak LR
of the base-width model (muP: the base-width LR), ``eval_interval`` in steps.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import WD_COUPLINGS, check_wd_rule

# Settings that change how a run is executed but not its result: not part of the run id.
_NOT_IN_ID = {"stack", "compile"}
# Settings added after runs were stored: left out of the id while at their default, so the
# ids of earlier runs (which predate them) do not change.
_ID_IF_NOT_DEFAULT = {"muon_convention": "spectral", "muon_momentum": 0.95,
                      "muon_nesterov": True, "muon_ns_steps": 5, "wd_rule": "mup",
                      "wd_coupling": "lr", "factory": ""}


@dataclass(frozen=True)
class RunSpec:
    """One training run's settings."""

    family: str = "proxy-llama"
    width: int = 128
    depth: int = 4
    parameterization: str = "mup"
    lr: float = 2 ** -8
    weight_decay: float = 0.0
    batch_size: int = 32          # sequences per step
    seq_len: int = 256            # tokens per sequence
    tokens: int = 32 * 256 * 600  # training tokens (steps = tokens // (batch_size * seq_len))
    schedule: str = "constant"    # advisor.rules.lr_schedule spec string
    seed: int = 0                 # model init and data order
    optimizer: str = "muadamw"    # muadamw | adamw | muon (Muon on hidden matrices, AdamW elsewhere)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 0.0        # max global grad norm; 0 = off
    eval_interval: int = 50       # steps between curve points
    eval_sequences: int = 128     # held-out sequences per evaluation
    diverge_factor: float = 1.5   # stop when smoothed train loss > factor x first loss
    data: str = "stdlib"          # calibration.train.data spec
    model: tuple = ()             # ProxyConfig overrides as sorted (key, value) pairs
    stack: bool = False           # allow stacked training of same-shape runs
    muon_convention: str = "spectral"  # optimizer muon: spectral | match_rms_adamw (advisor.rules.optim_rules)
    muon_momentum: float = 0.95   # optimizer muon: momentum of the Muon groups
    muon_nesterov: bool = True
    muon_ns_steps: int = 5        # Newton-Schulz iterations
    compile: str = "auto"         # auto (CUDA only) | always | never
    factory: str = ""             # pkg.mod:build, the user's own (width, lr=) -> (model,
                                  # optimizer) (calibration.model.factory); "": the family
    wd_rule: str = "mup"          # optimizer muadamw: hidden matrices' weight-decay width rule,
                                  # mup | sqrt | none (advisor.rules.optim_rules.WD_WIDTH_RULES)
    wd_coupling: str = "lr"       # AdamW decay per step: "lr" = lr_t * weight_decay (torch's
                                  # AdamW), "independent" = schedule_t * weight_decay, not
                                  # scaled by the LR (Wortsman et al. 2023 section 3.2.2)

    def __post_init__(self):
        def bad(msg):
            raise AdvisorError(msg)
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", tuple(sorted(self.model.items())))
        for name in ("width", "depth", "batch_size", "seq_len", "tokens", "eval_interval",
                     "eval_sequences"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            bad(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("lr", "eps", "diverge_factor"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                bad(f"{name} must be a positive number, got {v!r}")
        for name in ("weight_decay", "grad_clip"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                bad(f"{name} must be a number >= 0, got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < 1:
                bad(f"{name} must be in [0, 1), got {v!r}")
        if self.parameterization not in ("mup", "sp"):
            bad(f"parameterization must be mup or sp, got {self.parameterization!r}")
        if self.optimizer not in ("muadamw", "adamw", "muon"):
            bad(f"optimizer must be muadamw, adamw or muon, got {self.optimizer!r}")
        if self.muon_convention not in ("spectral", "match_rms_adamw"):
            bad(f"muon_convention must be spectral or match_rms_adamw, "
                f"got {self.muon_convention!r}")
        if not isinstance(self.muon_momentum, (int, float)) or isinstance(self.muon_momentum, bool) \
                or not 0 <= self.muon_momentum < 1:
            bad(f"muon_momentum must be in [0, 1), got {self.muon_momentum!r}")
        if not isinstance(self.muon_nesterov, bool):
            bad(f"muon_nesterov must be true or false, got {self.muon_nesterov!r}")
        if not isinstance(self.muon_ns_steps, int) or isinstance(self.muon_ns_steps, bool) \
                or not 1 <= self.muon_ns_steps < 100:
            bad(f"muon_ns_steps must be an integer in [1, 99], got {self.muon_ns_steps!r}")
        check_wd_rule(self.wd_rule)
        if self.wd_rule != "mup" and not (self.optimizer == "muadamw"
                                          and self.parameterization == "mup"):
            bad(f"wd_rule {self.wd_rule!r} is a muP width rule for AdamW's hidden matrices: it "
                f"needs optimizer muadamw and parameterization mup (got {self.optimizer}, "
                f"{self.parameterization}); leave it at mup otherwise")
        if self.wd_coupling not in WD_COUPLINGS:
            bad(f"wd_coupling must be one of {', '.join(WD_COUPLINGS)}, got {self.wd_coupling!r}")
        if self.wd_coupling != "lr" and (self.wd_rule != "mup" or self.optimizer == "muon"):
            bad("wd_coupling independent fixes the decay per step itself: it needs wd_rule mup "
                "and an AdamW optimizer (muadamw or adamw)")
        if not isinstance(self.factory, str) or (self.factory and ":" not in self.factory):
            bad(f"factory must look like package.module:function, got {self.factory!r}")
        if self.compile not in ("auto", "always", "never"):
            bad(f"compile must be auto, always or never, got {self.compile!r}")
        if self.tokens < self.batch_size * self.seq_len:
            bad(f"tokens {self.tokens} is less than one step of {self.batch_size} x "
                f"{self.seq_len} tokens")
        from advisor.rules.lr_schedule import parse_schedule
        parse_schedule(self.schedule).warmup_steps(self.steps)     # warmup fits the run

    # ------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self.tokens // (self.batch_size * self.seq_len)

    def muon_settings(self) -> dict | None:
        """Keyword settings of calibration.model.proxy.build_muon_optimizer (None unless muon)."""
        if self.optimizer != "muon":
            return None
        return {"convention": self.muon_convention, "momentum": float(self.muon_momentum),
                "nesterov": self.muon_nesterov, "ns_steps": self.muon_ns_steps}

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def lr_convention(self) -> str:
        """What ``lr`` means (advisor.laws.lawset's conventions.learning_rate): ``mup_base`` when a
        muP model is trained with muP's optimizer rules (hidden matrices then get
        lr * base_width / width, calibration.model.proxy.build_optimizer), else ``peak`` (every
        parameter group's peak LR is ``lr``)."""
        return "mup_base" if (self.parameterization == "mup"
                              and self.optimizer == "muadamw") else "peak"

    def settings(self) -> dict:
        """Flat JSON-able settings (the store's ``settings``)."""
        d = asdict(self)
        d["model"] = dict(self.model)
        return d

    @property
    def run_id(self) -> str:
        d = {k: v for k, v in self.settings().items() if k not in _NOT_IN_ID
             and not (k in _ID_IF_NOT_DEFAULT and v == _ID_IF_NOT_DEFAULT[k])}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def model_config(self, vocab_size: int | None = None):
        """The ProxyConfig this run trains (validated: AdvisorError if it cannot be built).

        ``vocab_size``: the data's vocabulary. It is the model's unless the run's ``model``
        settings fix one (a proxy of a user's architecture keeps the config's vocabulary);
        data with a larger vocabulary than that is refused."""
        from advisor.specs.proxyspec import ProxyConfig

        over = dict(self.model)
        over["seq_len"] = self.seq_len
        over["parameterization"] = self.parameterization
        if vocab_size is not None:
            declared = over.get("vocab_size")
            if declared is not None and vocab_size > declared:
                raise AdvisorError(
                    f"data {self.data}: its vocabulary ({vocab_size} tokens) is larger than the "
                    f"model's ({declared}, from its config): token ids the model cannot embed; "
                    "use the model's own tokenizer")
            if declared is None:          # a family's vocabulary: the data's
                over["vocab_size"] = vocab_size
        return ProxyConfig.from_family(self.family, width=self.width, depth=self.depth, **over)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_settings(cls, d: dict) -> "RunSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.field_names()})
