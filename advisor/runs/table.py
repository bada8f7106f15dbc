"""A sweep's runs as one table (:class:`RunTable`), read from a results store or a CSV.

A results store is read typed (:func:`table_from_store`): each run's settings, measured
losses and stored ``Conventions`` (``advisor.specs.conventions``), units explicit (batch in
tokens = sequences x the run's seq_len, D in tokens, N non-embedding parameters).

A CSV in Step Law's layout (shared/data/external/README.md) is the import adapter
(:func:`table_from_rows`): one row per run with at least ``N`` (parameters; non-embedding in
Step Law), ``D`` (training tokens), ``lr`` (peak LR), a batch size and a final loss. The batch
is read from ``bs_tokens`` (tokens) when the column exists, else from ``bs`` in sequences of
the row's ``seq_len`` column where the file has one, else of ``seq_len`` tokens (Step Law's
dense file: 2048). Optional columns: ``smooth loss``, ``weight_decay``, ``seed``, ``status``
(finished | diverged | failed), ``exp_name``, ``ti`` (steps; when present it must agree with
D / batch, which catches a batch given in the wrong unit), ``lr_convention`` (peak |
mup_base: what ``lr`` means), ``base_width`` (the muP base width, channels, where lr is
mup_base) and ``wd_rule`` (mup | sqrt | none, ``advisor.rules.optim_rules.WD_WIDTH_RULES``: how
the hidden matrices' weight decay was scaled with width). Where the runs record their
convention, ``advisor fit`` takes it from them (:func:`resolve_lr_convention`). Step Law's CSV
is also the export format (``advisor results --format csv``, ``ResultsStore.steplaw_rows``).

Checks, each failing with one line (AdvisorError): missing columns, non-numbers, NaN losses
of runs not marked diverged, duplicate runs (same N, D, lr, batch, weight decay and seed),
a batch that looks like sequences where tokens are expected (or the reverse; CSV only), runs
that differ in a field a law is fitted under (``advisor.specs.grouping.FIT_MUST_AGREE``:
parameterisation, schedule, optimizer, LR convention, base width, weight-decay width rule;
``--select COLUMN=VALUE`` picks one).

Cells: by default a cell is one (N, D) pair. Grids with several architectures at the same N
(mixture-of-experts variants, depth/width variants) name the columns that tell them apart
(``cell_by``, e.g. ``h,numl`` or ``nume,topk``; a store's ``width,depth``): a cell is then one
(N, D, those columns). ``n_column`` names the column the laws read as N (default ``N``; e.g.
``Na``, active parameters, in Step Law's MoE file).

Diverged runs are kept and marked, never dropped: a run is diverged when its status says so,
or when its loss is non-finite with a status column present, or when its loss is more than
``DIVERGED_EXCESS`` above the best finished run of its (N, D) cell. They tell the fitters
that the LR (at that batch) is too high.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from advisor.laws.lawset import CONVENTIONS
from advisor.rules.optim_rules import check_wd_rule
from advisor.specs.conventions import STEPLAW_SEQ_LEN, Conventions, parse_optimizer_label
from advisor.specs.grouping import fit_conflict

DIVERGED_EXCESS = 0.2          # loss > 1.2 x the cell's best: diverged
LOSS_COLUMNS = {"smooth": "smooth loss", "final": "loss"}
MIN_TOKEN_BATCH = 4096         # a token batch below this looks like sequences
MAX_SEQ_BATCH = 65536          # a sequence batch above this looks like tokens
FAILED = "failed"
LR_CONVENTIONS = CONVENTIONS["learning_rate"]   # what a law set's lr can mean


@dataclass
class RunTable:
    """Runs of a sweep as parallel arrays (one entry per run).

    N: parameters as the source counts them (non-embedding for Step Law grids and our
    stores); D: training tokens; lr: peak LR; batch_tokens: batch in tokens; weight_decay:
    AdamW lambda (NaN where not given); seed (NaN where not given); loss: final loss in nats
    per token (NaN for diverged runs without one); diverged: bool.
    """

    N: np.ndarray
    D: np.ndarray
    lr: np.ndarray
    batch_tokens: np.ndarray
    weight_decay: np.ndarray
    seed: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray
    names: list
    source: str
    loss_column: str
    n_failed: int = 0
    notes: list = field(default_factory=list)
    flops_per_token: np.ndarray | None = None   # DeepSeek's M, where h and numl are given
    width: np.ndarray | None = None             # d_model (channels), where h is given
    cell_labels: tuple = ()                      # per cell-by column: (R,) array of strings
    cell_by: tuple = ()                          # the names of those columns
    n_column: str = "N"                          # the column N was read from
    optimizer: str = ""      # the runs' optimizer column (muadamw, muon-spectral, ...), "" unknown
    lr_convention: str | None = None   # what lr means (peak | mup_base); None: not recorded
    mup_base_width: int | None = None  # muP base width (channels) where lr is mup_base
    wd_rule: str | None = None         # hidden matrices' weight-decay width rule (mup | sqrt |
                                       # none) the runs record; None: not recorded
    seq_len: int | None = None         # tokens per sequence of every run; None: not recorded
                                       # or not one

    def cell_flops_per_token(self, c: int):
        """DeepSeek's M of cell c (non-embedding FLOPs/token), or None where unknown."""
        return _one_value(self.flops_per_token, self.cell_index == c)

    def cell_width(self, c: int):
        """The width W = d_model of cell c (channels), or None where unknown."""
        return _one_value(self.width, self.cell_index == c)

    def cell_variables(self, c: int) -> dict:
        """The law variables besides N and D that cell c records: M (DeepSeek's
        non-embedding FLOPs per token) and W (d_model, channels); None where unknown."""
        return {"M": self.cell_flops_per_token(c), "W": self.cell_width(c)}

    def __len__(self):
        return len(self.N)

    def _run_keys(self):
        return list(zip(self.N.tolist(), self.D.tolist(), *[list(c) for c in self.cell_labels]))

    @property
    def cell_keys(self) -> list[tuple]:
        """Distinct cells as (N, D, *cell-by values), sorted by N, then D, then the values."""
        return sorted(set(self._run_keys()))

    @property
    def cells(self) -> list[tuple[float, float]]:
        """(N, D) of each cell, in ``cell_keys`` order (repeats where cell_by splits an N, D)."""
        return [(k[0], k[1]) for k in self.cell_keys]

    def cell_label(self, c: int) -> str:
        """Human-readable name of cell c: N, D and the cell-by values."""
        k = self.cell_keys[c]
        extra = "".join(f", {name}={v}" for name, v in zip(self.cell_by, k[2:]))
        return f"N={k[0]:.3g}, D={k[1]:.3g}{extra}"

    @property
    def cell_index(self) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.cell_keys)}
        return np.array([lookup[c] for c in self._run_keys()], dtype=int)

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the runs as fitted: N, D, lr, batch, loss.

        Order-independent; a law file records it so ``advisor evaluate`` can tell whether a
        grid is the one the law was fitted on (an in-sample figure) or another one.
        """
        import hashlib

        rows = sorted(zip(*(np.round(a, 12).tolist() for a in
                            (self.N, self.D, self.lr, self.batch_tokens,
                             np.nan_to_num(self.loss, nan=-1.0)))))
        return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]

    @property
    def finished(self) -> np.ndarray:
        return ~self.diverged & np.isfinite(self.loss)

    def subset(self, mask) -> "RunTable":
        """The runs where ``mask`` (bool, one per run) is true, in this table's order."""
        return self.take(np.flatnonzero(np.asarray(mask, bool)))

    def take(self, rows) -> "RunTable":
        """The runs at integer positions ``rows``, in that order."""
        rows = np.asarray(rows, int)
        return RunTable(N=self.N[rows], D=self.D[rows], lr=self.lr[rows],
                        batch_tokens=self.batch_tokens[rows],
                        weight_decay=self.weight_decay[rows], seed=self.seed[rows],
                        loss=self.loss[rows], diverged=self.diverged[rows],
                        names=[self.names[i] for i in rows], source=self.source,
                        loss_column=self.loss_column, n_failed=self.n_failed,
                        notes=list(self.notes), optimizer=self.optimizer,
                        flops_per_token=None if self.flops_per_token is None
                        else self.flops_per_token[rows],
                        width=None if self.width is None else self.width[rows],
                        cell_labels=tuple(c[rows] for c in self.cell_labels),
                        cell_by=self.cell_by, n_column=self.n_column,
                        lr_convention=self.lr_convention, mup_base_width=self.mup_base_width,
                        wd_rule=self.wd_rule, seq_len=self.seq_len)

    def conventions(self, lr_convention: str | None = None) -> Conventions:
        """What the runs' LR and weight decay mean (``advisor.specs.conventions``), under
        ``lr_convention`` (default: the one the runs record, else ``peak``). muP's base width
        and weight-decay width rule belong to a ``mup_base`` LR only."""
        lr = lr_convention or self.lr_convention or "peak"
        mup = lr == "mup_base"
        opt, muon = parse_optimizer_label(self.optimizer or None)
        return Conventions(lr=lr, base_width=self.mup_base_width if mup else None,
                           wd_rule=self.wd_rule if mup else None, optimizer=opt,
                           muon_convention=muon, seq_len=self.seq_len)

    def summary(self) -> str:
        by = ", ".join(("N" if self.n_column == "N" else f"N={self.n_column}", "D")
                       + tuple(self.cell_by))
        return (f"{len(self)} runs ({int(self.diverged.sum())} diverged) in "
                f"{len(self.cells)} ({by}) cells from {self.source}, loss column "
                f"{self.loss_column!r}")


def load_runs(path, *, loss: str = "auto", seq_len: int = STEPLAW_SEQ_LEN,
              select=(), cell_by=(), n_column: str = "N") -> RunTable:
    """Read a sweep from a Step Law-layout CSV or a results store directory.

    ``loss``: "smooth" (column ``smooth loss``), "final" (column ``loss``) or "auto"
    (smooth where the column exists, else final). ``seq_len`` converts ``bs`` (sequences)
    to tokens when there is no ``bs_tokens`` column. ``select``: "COLUMN=VALUE" strings; only
    rows matching all of them are kept (e.g. parameterization=mup). ``cell_by``: extra
    columns that define a cell; ``n_column``: the column read as N (module doc).
    """
    p = Path(path)
    if p.is_dir():
        from advisor.runs.store import ResultsStore  # torch-free; imported only for stores

        with ResultsStore.open(p, readonly=True) as store:
            return table_from_store(store, loss=loss, select=select, cell_by=cell_by,
                                    n_column=n_column, source=f"results store {p}")
    if not p.is_file():
        raise AdvisorError(f"no such results store or CSV file: {path}")
    source = str(p)
    rows = select_rows(_csv_rows(p), select, source)
    return table_from_rows(rows, source=source, loss=loss, seq_len=seq_len, cell_by=cell_by,
                           n_column=n_column)


def select_rows(rows: list[dict], select, source: str) -> list[dict]:
    """Keep the rows whose columns match every "COLUMN=VALUE" in ``select``."""
    for item in select:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise AdvisorError(f"--select takes COLUMN=VALUE, got {item!r}")
        if rows and key not in rows[0]:
            raise AdvisorError(f"{source}: no column {key!r} to select on "
                               f"(columns: {', '.join(rows[0])})")
        rows = [r for r in rows if str(r.get(key)) == value]
        if not rows:
            raise AdvisorError(f"{source}: no runs with {key}={value}")
    return rows


def _csv_rows(p: Path) -> list[dict]:
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise AdvisorError(f"{p} is empty")
            rows = list(reader)
    except UnicodeDecodeError:
        raise AdvisorError(f"{p} is not a text CSV file") from None
    except csv.Error as exc:
        raise AdvisorError(f"{p} is not a valid CSV file: {exc}") from None
    if not rows:
        raise AdvisorError(f"{p} has a header but no runs")
    return rows


# The peak LRs a run can have trained at (any optimizer or convention here): outside, a row
# is a typo or a unit mix-up (an LR of 1e300 is not a result).
RUN_LR_RANGE = (1e-8, 10.0)
# Finished runs whose losses all agree to this relative precision carry no information.
FLAT_LOSS_REL = 1e-9


def _row_where(source: str, i: int, name: str) -> str:
    """'FILE, row 5' (a CSV's line number, header = row 1), plus the run's name if it has one."""
    where = f"{source}, row {i + 2}"
    return where if name == f"row {i + 2}" else f"{where} ({name})"


def _number(row: dict, key: str, i: int, name: str, source: str = "rows") -> float:
    raw = row.get(key)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return math.nan
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise AdvisorError(f"{_row_where(source, i, name)}: column {key!r} is not a number: "
                           f"{raw!r}") from None


def parse_columns(text, what: str) -> tuple:
    """'a,b' -> ('a', 'b'); an empty or malformed list is one clear error."""
    if text is None or text == () or text == "":
        return ()
    items = tuple(text) if isinstance(text, (list, tuple)) else tuple(str(text).split(","))
    items = tuple(x.strip() for x in items)
    if not all(items) or len(set(items)) != len(items):
        raise AdvisorError(f"{what} takes column names separated by commas, got {text!r}")
    return items


def table_from_rows(rows: list[dict], *, source: str = "rows", loss: str = "auto",
                    seq_len: int = STEPLAW_SEQ_LEN, cell_by=(), n_column: str = "N") -> RunTable:
    """Build a checked :class:`RunTable` from rows in the Step Law layout (see module doc):
    the import adapter for CSV files; a results store is read typed (:func:`table_from_store`)."""
    if not rows:
        raise AdvisorError(f"{source}: no runs")
    cols = set(rows[0])
    cell_by, n_column = _check_cell_columns(cols, cell_by, n_column, source, list(rows[0]))
    missing = [c for c in (n_column, "D", "lr") if c not in cols]
    if "bs" not in cols and "bs_tokens" not in cols:
        missing.append("bs or bs_tokens")
    loss_col = _loss_column(loss, "smooth loss" in cols)
    if loss_col not in cols:
        missing.append(loss_col)
    if missing:
        raise AdvisorError(f"{source}: missing column(s) {', '.join(missing)} (expected the "
                           "Step Law layout: N, D, lr, bs, loss, smooth loss; see "
                           "docs/fitting.md, 'Reference')")
    if not isinstance(seq_len, int) or seq_len <= 0:
        raise AdvisorError(f"seq_len must be a positive integer, got {seq_len!r}")

    _check_one_fit(rows, source)
    lr_convention, base_width = _conventions(rows, source)
    wd_rule = _wd_rule(rows, source)
    has_status = "status" in cols
    runs = _Runs(cell_by)
    steps, bs_col, sl_col = [], [], []
    arch = {c: [] for c in ARCH_COLUMNS if c in cols}
    for i, row in enumerate(rows):
        name = str(row.get("exp_name") or row.get("run_id") or f"row {i + 2}")
        st = str(row.get("status") or "finished").strip().lower() if has_status else "finished"
        if st not in ("finished", "diverged", FAILED):
            raise AdvisorError(f"{_row_where(source, i, name)}: status must be finished, "
                               f"diverged or failed, got {st!r}")
        if st == FAILED:            # crashed for reasons unrelated to the LR: not evidence
            runs.n_failed += 1
            continue
        for c, vals in arch.items():
            vals.append(str(row.get(c)).strip())
        num = lambda key: _number(row, key, i, name, source)    # noqa: E731
        row_sl = num("seq_len")
        if "bs_tokens" in cols:
            bt = num("bs_tokens")
        else:           # a per-run seq_len column wins over --seq-len
            bt = num("bs") * (row_sl if math.isfinite(row_sl) and row_sl > 0 else seq_len)
        steps.append(num("ti"))
        bs_col.append(num("bs"))
        sl_col.append(row_sl)
        runs.add(name, N=num(n_column), D=num("D"), lr=num("lr"), batch_tokens=bt,
                 weight_decay=num("weight_decay"), seed=num("seed"), loss=num(loss_col),
                 status=st, width=num("h"), depth=num("numl"),
                 seq_len=row_sl if math.isfinite(row_sl) else seq_len,
                 labels=[row.get(c) for c in cell_by])
    if not runs.names:
        raise AdvisorError(f"{source}: every run failed; nothing to fit")
    arrays = runs.arrays()
    _check_values(arrays, runs.names, n_column, source)
    steps, bs_col, sl_col = (np.array(x, float) for x in (steps, bs_col, sl_col))
    _check_batch_units(arrays["batch_tokens"], arrays["D"], steps, "bs_tokens" in cols,
                       seq_len, source, bs_col, sl_col)
    # the runs' sequence length: the seq_len column where every run states the same one, else
    # --seq-len where the batch was read in sequences of it; not recorded otherwise
    stated = {int(x) for x in sl_col if math.isfinite(x) and x > 0}
    if "seq_len" in cols and np.all(np.isfinite(sl_col)):
        runs_seq = stated.pop() if len(stated) == 1 else None
    else:
        runs_seq = seq_len if "bs_tokens" not in cols and not stated else None
    return _checked_table(
        runs, arrays, arch, source=source, loss_col=loss_col, has_status=has_status,
        n_column=n_column, optimizer=next((str(r["optimizer"]) for r in rows
                                           if r.get("optimizer") not in (None, "")), ""),
        lr_convention=lr_convention, base_width=base_width, wd_rule=wd_rule,
        seq_len=runs_seq)


def table_from_store(store, *, loss: str = "auto", select=(), cell_by=(), n_column: str = "N",
                     source: str | None = None) -> RunTable:
    """Build a checked :class:`RunTable` from a results store's typed run records.

    Units are the records' own: the batch is ``batch_size`` sequences x ``seq_len`` tokens
    (the run's settings), D = ``tokens``, N = the run's non-embedding parameters; what the LR
    and weight decay mean (LR convention, muP base width, weight-decay width rule, optimizer,
    sequence length) is the run's stored ``Conventions``. Loss ``smooth`` (the default) is the
    mean train loss over the last 10% of recorded points
    (``ResultsStore.smoothed_train_loss``), ``final`` the final train loss. ``select``,
    ``cell_by`` and ``n_column`` name the runs' fields (:func:`store_fields`); ``source``
    names the store in messages (default: its directory)."""
    source = source or f"results store {store.path.parent}"
    records = store.runs()
    if not records:
        raise AdvisorError(f"{source}: no runs")
    loss_col = _loss_column(loss, True)
    fields = [store_fields(r, source) for r in records]
    kept = {id(f) for f in select_rows(fields, select, source)}
    records = [(r, f) for r, f in zip(records, fields) if id(f) in kept]
    cell_by, n_column = _check_cell_columns(set(fields[0]), cell_by, n_column, source,
                                            list(fields[0]))
    _check_one_fit([f for _, f in records], source)
    runs = _Runs(cell_by)
    arch = {c: [] for c in STORE_ARCH_FIELDS if c not in cell_by}
    convs = []
    for r, f in records:
        if r.status == FAILED:      # crashed for reasons unrelated to the LR: not evidence
            runs.n_failed += 1
            continue
        s = r.settings
        seq = int(s["seq_len"])
        for c, vals in arch.items():
            vals.append(str(f.get(c, "")))
        convs.append(r.conventions)
        runs.add(r.run_id, N=_field_number(f, n_column, r.run_id, source), D=float(s["tokens"]),
                 lr=float(s["lr"]), batch_tokens=float(int(s["batch_size"]) * seq),
                 weight_decay=_field_number(f, "weight_decay", r.run_id, source),
                 seed=_field_number(f, "seed", r.run_id, source),
                 loss=(store.smoothed_train_loss(r.run_id) if loss_col == LOSS_COLUMNS["smooth"]
                       else r.final_train_loss),
                 status=r.status, width=float(s["width"]), depth=float(s["depth"]),
                 seq_len=seq, labels=[f.get(c) for c in cell_by])
    if not runs.names:
        raise AdvisorError(f"{source}: every run failed; nothing to fit")
    arrays = runs.arrays()
    _check_values(arrays, runs.names, n_column, source)
    conv = convs[0]
    mup = conv.lr == "mup_base"
    seqs = sorted({c.seq_len for c in convs})
    notes = ([] if len(seqs) == 1 else
             [f"the runs have {len(seqs)} sequence lengths ({', '.join(map(str, seqs))} "
              "tokens): no seq_len is recorded in the law set"])
    return _checked_table(runs, arrays, arch, source=source, loss_col=loss_col,
                          has_status=True, n_column=n_column,
                          optimizer=conv.optimizer_label or "", lr_convention=conv.lr,
                          base_width=conv.base_width if mup else None,
                          wd_rule=conv.wd_rule if mup else None,
                          seq_len=seqs[0] if len(seqs) == 1 else None, notes=notes)


# A store run's fields that describe its architecture: runs of one (N, D) cell that differ in
# one of them are noted (the store's counterpart of Step Law's ARCH_COLUMNS)
STORE_ARCH_FIELDS = ("width", "depth", "family", "model", "arch")


def store_fields(record, source: str) -> dict:
    """A stored run's named fields, what ``select``, ``cell_by`` and ``n_column`` name and
    :func:`advisor.specs.grouping.fit_conflict` compares: its settings (dicts and lists as
    JSON), ``N`` (non-embedding parameters), ``D`` (tokens), ``status``, and from its
    ``Conventions``: ``optimizer`` (one word: adamw, muadamw, muon-<convention>),
    ``lr_convention`` and, for a ``mup_base`` LR, ``base_width`` and ``wd_rule`` (empty
    otherwise)."""
    conv = record.conventions
    if conv is None:
        raise AdvisorError(f"{source}: run {record.run_id}'s stored settings do not build a "
                           "proxy model, so its conventions are unknown")
    s = record.settings
    out = {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
           for k, v in s.items()}
    mup = conv.lr == "mup_base"
    out.update({"N": record.n_params_non_embedding, "D": s.get("tokens"),
                "status": record.status, "optimizer": conv.optimizer_label or "",
                "lr_convention": conv.lr, "base_width": conv.base_width if mup else "",
                "wd_rule": conv.wd_rule if mup else ""})
    return out


def _field_number(fields: dict, key: str, run_id: str, source: str) -> float:
    v = fields.get(key)
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        raise AdvisorError(f"{source}: run {run_id}'s {key!r} is not a number: {v!r}") from None


class _Runs:
    """The runs of a table as they are read (one entry per run), before the checks."""

    FIELDS = ("N", "D", "lr", "batch_tokens", "weight_decay", "seed", "loss", "width",
              "depth", "seq_len")

    def __init__(self, cell_by):
        self.cell_by = cell_by
        self.names, self.status, self.labels = [], [], [[] for _ in cell_by]
        self.cols = {k: [] for k in self.FIELDS}
        self.n_failed = 0

    def add(self, name, *, status, labels, **values):
        self.names.append(name)
        self.status.append(status)
        for lab, v in zip(self.labels, labels):
            lab.append(str(v if v is not None else "").strip())
        for k in self.FIELDS:
            self.cols[k].append(values[k])

    def arrays(self) -> dict:
        return {k: np.array(v, float) for k, v in self.cols.items()}


def _loss_column(loss: str, has_smooth: bool) -> str:
    if loss not in ("auto", "smooth", "final"):
        raise AdvisorError(f"loss must be auto, smooth or final, got {loss!r}")
    return ((LOSS_COLUMNS["smooth"] if has_smooth else LOSS_COLUMNS["final"]) if loss == "auto"
            else LOSS_COLUMNS[loss])


def _check_cell_columns(cols: set, cell_by, n_column, source: str, listed: list) -> tuple:
    """(cell_by, n_column) checked against the columns (fields) the runs have."""
    cell_by = parse_columns(cell_by, "--cell-by")
    if not isinstance(n_column, str) or not n_column.strip():
        raise AdvisorError(f"--n-column takes one column name, got {n_column!r}")
    n_column = n_column.strip()
    asked = ((n_column,) if n_column != "N" else ()) + cell_by
    bad = [c for c in asked if c not in cols]
    if bad:
        raise AdvisorError(f"{source}: no column(s) {', '.join(map(repr, bad))} for "
                           f"--n-column/--cell-by (columns: {', '.join(listed)})")
    for c in cell_by:
        if c in ("D", n_column):
            raise AdvisorError(f"--cell-by {c}: N and D always define a cell; name only the "
                               "columns that tell architectures at the same N and D apart")
    return cell_by, n_column


def _check_one_fit(rows: list[dict], source: str) -> None:
    """Refuse runs that differ in a field a law is fitted under
    (``advisor.specs.grouping.FIT_MUST_AGREE``)."""
    conflict = fit_conflict(rows)
    if conflict is None:
        return
    col, values = conflict
    if col == "wd_rule":
        raise AdvisorError(_mixed_wd_rules(rows, values, source))
    raise AdvisorError(f"{source}: runs differ in {col} ({', '.join(values[:4])}); fit "
                       f"one at a time, e.g. --select {col}={values[0]}")


def _check_values(a: dict, names: list, n_column: str, source: str) -> None:
    """Positive N, D, lr and batch; an lr a model can train at."""
    for key, col in (("N", n_column), ("D", "D"), ("lr", "lr"), ("batch_tokens", "batch")):
        arr = a[key]
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            j = int(np.argmax(bad))
            raise AdvisorError(f"{source}: {int(bad.sum())} run(s) have a missing, zero or "
                               f"negative {col} (first: {names[j]})")
    lo, hi = RUN_LR_RANGE
    lr = a["lr"]
    bad = (lr < lo) | (lr > hi)
    if bad.any():
        j = int(np.argmax(bad))
        raise AdvisorError(f"{source}: {int(bad.sum())} run(s) have an lr outside [{lo:g}, "
                           f"{hi:g}], where no model trains (first: {names[j]}, lr "
                           f"{lr[j]:.3g}); fix or remove them")


def _checked_table(runs: _Runs, a: dict, arch: dict, *, source, loss_col, has_status,
                   n_column, optimizer, lr_convention, base_width, wd_rule, seq_len,
                   notes=()) -> RunTable:
    """The losses checked, duplicates refused, the runs in one canonical order, mixed
    architectures noted and blown-up runs marked: the table both sources end in."""
    names, cell_by = runs.names, runs.cell_by
    N, D, lr, bt, wd, seed, L = (a[k] for k in ("N", "D", "lr", "batch_tokens",
                                                "weight_decay", "seed", "loss"))
    diverged = np.array([s == "diverged" for s in runs.status])
    nan_loss = ~np.isfinite(L) & ~diverged
    if nan_loss.any():
        j = int(np.argmax(nan_loss))
        hint = ("mark them status=diverged" if has_status
                else "add a status column with diverged for runs that blew up")
        raise AdvisorError(f"{source}: {int(nan_loss.sum())} run(s) not marked diverged have "
                           f"a NaN or missing {loss_col!r} (first: {names[j]}); {hint}, or "
                           "remove them")
    if np.any(L[np.isfinite(L)] <= 0):
        raise AdvisorError(f"{source}: losses must be positive")
    done = L[np.isfinite(L) & ~diverged]
    if done.size >= 2 and np.ptp(done) <= FLAT_LOSS_REL * float(np.mean(done)):
        raise AdvisorError(f"{source}: all {done.size} finished runs have the same loss "
                           f"({float(done[0]):.6g}): the runs carry no information about "
                           "how the loss depends on LR, batch or size, so no law can be "
                           "fitted")

    labels = tuple(np.array(lab, dtype=object) for lab in runs.labels)
    label_codes = [np.unique(lab.astype(str), return_inverse=True)[1].astype(float)
                   for lab in labels]
    key_cols = np.column_stack([N, D, lr, bt, np.nan_to_num(wd, nan=-1.0),
                                np.nan_to_num(seed, nan=-1.0), *label_codes])
    _, first, counts = np.unique(key_cols, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup_rows = key_cols[first[counts > 1][0]]
        j = int(np.flatnonzero(np.all(key_cols == dup_rows, axis=1))[1])
        what = ", ".join(("N", "D") + cell_by)
        raise AdvisorError(f"{source}: {int((counts - 1)[counts > 1].sum())} duplicate run(s) "
                           f"with the same {what}, lr, batch, weight decay and seed (first: "
                           f"{names[j]}); remove them or give each repeat its own seed, or, "
                           "for several architectures at the same N, name the columns that "
                           "tell them apart with --cell-by")

    # DeepSeek LLM's M = 72 n_layer d^2 + 12 n_layer d seq (Bi et al. 2024, Sec. 3.1)
    h, nl = a["width"], a["depth"]
    M = 72 * nl * h * h + 12 * nl * h * a["seq_len"]
    # one canonical order, so that no fitter's result depends on the order the rows came in
    # (a store's row order is its runs' finishing order): by cell, then lr, batch, weight
    # decay and seed -- unique after the duplicate check above
    # (np.lexsort's last key is the primary one)
    order = np.lexsort(key_cols[:, [5, 4, 3, 2, *range(key_cols.shape[1] - 1, 5, -1), 1, 0]].T)
    table = RunTable(N=N, D=D, lr=lr, batch_tokens=bt, weight_decay=wd, seed=seed, loss=L,
                     diverged=diverged, names=names, source=source, loss_column=loss_col,
                     n_failed=runs.n_failed, notes=list(notes),
                     flops_per_token=M if np.isfinite(M).any() else None,
                     width=h if np.isfinite(h).any() else None,
                     cell_labels=labels, cell_by=cell_by, n_column=n_column,
                     optimizer=optimizer, lr_convention=lr_convention,
                     mup_base_width=base_width, wd_rule=wd_rule, seq_len=seq_len).take(order)
    _note_mixed_architectures(table, {c: np.array(v, dtype=object)[order]
                                      for c, v in arch.items()})
    _mark_blown_up(table)
    if not table.finished.any():
        raise AdvisorError(f"{source}: all {len(table)} runs diverged; the LR grid is too high "
                           "everywhere, so there is no optimum to fit")
    return table


def _conventions(rows: list[dict], source: str) -> tuple:
    """(lr convention, muP base width) the rows record in ``lr_convention`` and
    ``base_width`` columns (a results store writes both; a CSV may), or None where not
    recorded. The columns already agree across rows (``FIT_MUST_AGREE``)."""
    conv = next((str(r["lr_convention"]).strip() for r in rows
                 if r.get("lr_convention") not in (None, "")), None)
    if conv is not None and conv not in LR_CONVENTIONS:
        raise AdvisorError(f"{source}: lr_convention must be one of "
                           f"{', '.join(LR_CONVENTIONS)}, got {conv!r}")
    raw = next((r["base_width"] for r in rows if r.get("base_width") not in (None, "")), None)
    width = None
    if raw is not None:
        try:
            width = int(float(raw))
        except (TypeError, ValueError):
            width = 0
        if width < 1 or width != float(raw):
            raise AdvisorError(f"{source}: base_width must be a positive integer (channels), "
                               f"got {raw!r}")
    if conv == "mup_base" and width is None:
        raise AdvisorError(f"{source}: lr_convention is mup_base but no base_width column "
                           "says which width the LR is for")
    return conv, width


def _mixed_wd_rules(rows: list[dict], values: list[str], source: str) -> str:
    """The one-line refusal for runs under several weight-decay width rules."""
    counts = {v: sum(str(r.get("wd_rule")) == v for r in rows) for v in values}
    found = ", ".join(f"{v}: {n} runs" for v, n in counts.items())
    return (f"{source}: runs differ in wd_rule, the hidden matrices' weight-decay width rule "
            f"({found}); a law set is fitted under one rule and records it: take one rule "
            f"at a time, e.g. --select wd_rule={values[0]}")


def _wd_rule(rows: list[dict], source: str) -> str | None:
    """The weight-decay width rule the rows record in a ``wd_rule`` column (they already
    agree, ``FIT_MUST_AGREE``), or None where none is recorded."""
    rule = next((str(r["wd_rule"]).strip() for r in rows
                 if r.get("wd_rule") not in (None, "")), None)
    return None if rule is None else check_wd_rule(rule, source)


def fit_conventions(given: str | None, table: RunTable) -> Conventions:
    """The conventions to fit under (:func:`resolve_lr_convention`, then
    ``RunTable.conventions``); a weight-decay width rule the runs record under a peak LR,
    where muP's width rules do not apply, is left out of them with a note on the table."""
    lr = resolve_lr_convention(given, table)
    if table.wd_rule is not None and lr != "mup_base":
        table.notes.append(f"the runs' wd_rule ({table.wd_rule}) is not recorded in the law "
                           "set: their LR convention is peak, where muP's width rules do not "
                           "apply")
    return table.conventions(lr)


def resolve_lr_convention(given: str | None, table: RunTable) -> str:
    """The LR convention to fit under: what the runs record (a results store always does),
    else ``given``, else ``peak``. A ``given`` that contradicts the runs is an error."""
    if given is not None and given not in LR_CONVENTIONS:
        raise AdvisorError(f"--lr-convention must be one of {', '.join(LR_CONVENTIONS)}, "
                           f"got {given!r}")
    if table.lr_convention is None:
        return given or "peak"
    if given is not None and given != table.lr_convention:
        raise AdvisorError(f"--lr-convention {given}: the runs of {table.source} record "
                           f"lr_convention {table.lr_convention}; leave the option out")
    return table.lr_convention


def _check_batch_units(bt, D, steps, from_tokens_col, seq_len, source, bs_col, sl_col):
    """Catch a batch in sequences where tokens are expected, and the reverse."""
    looks_like_seqs = (f"{source}: bs_tokens looks like a batch in sequences, not tokens "
                       "({why}); name that column bs (sequences of "
                       f"{seq_len} tokens) or convert it to tokens")
    if from_tokens_col:
        has_sl = np.isfinite(sl_col) & (sl_col > 0)
        has_bs = np.isfinite(bs_col) & (bs_col > 0)
        if has_sl.any() and np.any(bt[has_sl] < sl_col[has_sl]):
            raise AdvisorError(looks_like_seqs.format(why="some batches are shorter than one "
                                                          "sequence of seq_len tokens"))
        if has_bs.any() and np.median(bt[has_bs] / bs_col[has_bs]) < 2:
            raise AdvisorError(looks_like_seqs.format(why="it equals the bs column"))
        if not has_sl.any() and not has_bs.any() and np.median(bt) < MIN_TOKEN_BATCH:
            raise AdvisorError(looks_like_seqs.format(
                why=f"median {np.median(bt):.0f}, below {MIN_TOKEN_BATCH} tokens"))
    if not from_tokens_col and np.median(bt / seq_len) > MAX_SEQ_BATCH:
        raise AdvisorError(f"{source}: bs has median {np.median(bt / seq_len):.0f}, which looks "
                           "like a batch in tokens, not sequences; name that column bs_tokens")
    ok = np.isfinite(steps) & (steps > 0)
    if ok.any():
        ratio = steps[ok] * bt[ok] / D[ok]
        bad = (ratio < 0.8) | (ratio > 1.25)
        if np.mean(bad) > 0.5:
            med = float(np.median(ratio))
            raise AdvisorError(f"{source}: steps x batch is {med:.3g} x D for most runs "
                               "(expected 1): the batch column is in the wrong unit "
                               f"(bs in sequences of {seq_len} tokens, bs_tokens in tokens) or "
                               "D is not in tokens")


def _one_value(values, mask):
    """The value of ``values`` (per run, or None) on the cell ``mask``: its first run's, where
    every run of it has one (a cell that mixes architectures has a note on the table), else
    None."""
    if values is None:
        return None
    v = values[mask]
    return float(v[0]) if v.size and np.all(np.isfinite(v)) else None


ARCH_COLUMNS = ("h", "ffnh", "numh", "numl", "nume", "topk", "moeh")


def _note_mixed_architectures(table: RunTable, arch: dict) -> None:
    """Note cells whose runs differ in an architecture column not named in --cell-by.

    ``arch``: {column: per-run values (strings)} for the ARCH_COLUMNS the file has.
    """
    present = [c for c in arch if c not in table.cell_by]
    if not present:
        return
    idx = table.cell_index
    mixed = []
    for c in range(len(table.cells)):
        m = idx == c
        differ = [col for col in present if len(set(arch[col][m].tolist())) > 1]
        if differ:
            mixed.append((table.cell_label(c), differ))
    if mixed:
        cols = sorted({col for _, d in mixed for col in d})
        table.notes.append(f"{len(mixed)} cell(s) mix architectures (first: {mixed[0][0]}, "
                           f"{', '.join(mixed[0][1])} differ); if they are different models "
                           f"at the same N, split them with --cell-by {','.join(cols)}")


def _mark_blown_up(table: RunTable) -> None:
    """Mark runs whose loss is far above their cell's best as diverged (in place)."""
    idx = table.cell_index
    fin = table.finished
    blown = np.zeros(len(table), bool)
    for c in range(len(table.cells)):
        m = idx == c
        if not (m & fin).any():
            continue
        best = table.loss[m & fin].min()
        blown |= m & fin & (table.loss > best * (1 + DIVERGED_EXCESS))
    if blown.any():
        table.diverged = table.diverged | blown
        table.notes.append(f"{int(blown.sum())} run(s) with a loss more than "
                           f"{DIVERGED_EXCESS:.0%} above their cell's best are treated as "
                           "diverged")
