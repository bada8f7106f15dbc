"""Property-based tests of the parsers users feed text to."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from advisor.errors import AdvisorError
from advisor.laws.lawset import parse_yaml_text, validate_lawset_dict
from advisor.rules.lr_schedule import parse_schedule
from advisor.common.numbers import parse_count


@given(st.floats(min_value=1e6, max_value=1e14))
def test_any_plain_float_round_trips(x):
    assert parse_count(repr(x), minimum=1e6, maximum=1e14) == pytest.approx(x)


@given(st.floats(min_value=1, max_value=999), st.sampled_from(["k", "M", "B", "T", "b", "m"]))
def test_suffixes_are_powers_of_a_thousand(x, suffix):
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[suffix.lower()]
    assert parse_count(f"{x}{suffix}", maximum=1e16) == pytest.approx(x * scale)


@given(st.text(max_size=30))
def test_arbitrary_text_either_parses_to_a_positive_finite_number_or_errors_cleanly(s):
    try:
        v = parse_count(s, minimum=1.0, maximum=1e15)
    except AdvisorError as exc:
        assert "\n" not in str(exc)
    else:
        assert math.isfinite(v) and 1.0 <= v <= 1e15


@given(st.text(max_size=60))
def test_arbitrary_schedule_specs_parse_or_error_cleanly(s):
    try:
        sched = parse_schedule(s)
    except AdvisorError:
        return
    m = sched.multipliers(50)
    assert len(m) == 50 and all(0 <= x <= 1 + 1e-12 for x in m)


@given(st.sampled_from(["wsd", "cosine", "linear", "constant"]),
       st.floats(0, 1), st.floats(0, 1), st.sampled_from(["linear", "1-sqrt", "cosine"]),
       st.integers(1, 2000))
def test_schedules_stay_in_range_and_round_trip_through_their_spec(fam, final, cooldown, shape, T):
    kw = {"wsd": dict(final=final, cooldown=cooldown, shape=shape),
          "cosine": dict(final=final), "linear": dict(final=final), "constant": {}}[fam]
    from advisor.rules.lr_schedule import Schedule
    s = Schedule(family=fam, **kw)
    m = s.multipliers(T)
    assert ((m >= 0) & (m <= 1 + 1e-12)).all()
    assert (parse_schedule(s.to_spec()).multipliers(T) == pytest.approx(m))


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_arbitrary_yaml_text_never_escapes_as_anything_but_advisor_error(text):
    try:
        data = parse_yaml_text(text, "law set")
        validate_lawset_dict(data)
    except AdvisorError:
        pass


json_leaf = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=8),
                      st.integers())
json_like = st.recursive(json_leaf, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)), max_leaves=20)


@settings(max_examples=300)
@given(json_like)
def test_arbitrary_structures_are_validated_without_crashing(obj):
    try:
        validate_lawset_dict(obj)
    except AdvisorError:
        pass


@given(st.dictionaries(st.sampled_from(["form", "coefficient", "exponents", "value", "E",
                                        "fitted_range", "unit"]), json_like, max_size=5))
def test_arbitrary_laws_inside_a_valid_shell_are_validated_without_crashing(law):
    d = {"schema": "hp-advisor/lawset/v1", "name": "x", "source": {},
         "conventions": {"params": "total"}, "laws": {"learning_rate": law}}
    try:
        validate_lawset_dict(d)
    except AdvisorError:
        pass
