"""Laws as data: the law-set files in recipes/laws, their formula forms, and published configs.

Holds ``lawforms`` (the formula families as pure functions), ``lawset`` (load, validate and
evaluate a law set), ``plausible`` (the checks every law set passes on load) and
``published`` (published pre-training configs and tuned optima).
May import: ``advisor.errors``, ``advisor.common``, ``advisor.rules``, ``advisor.specs``.
"""
