"""hp-advisor: hyperparameter laws for language-model training, as data, with their evidence.

Library use::

    from advisor import recommend
    rec = recommend(params=7e9)          # total parameters
    rec.learning_rate.value, rec.to_yaml()

Importing this package is cheap: it never imports torch.
"""
from advisor.errors import AdvisorError
from advisor.version import __version__

__all__ = ["AdvisorError", "recommend", "__version__"]


def __getattr__(name):  # lazy, so `import advisor` stays fast
    if name == "recommend":
        from advisor.recommendation.core import recommend
        return recommend
    raise AttributeError(name)
