"""``python -m advisor.cli``: the same as the ``advisor`` command."""
from advisor.cli.app import main

if __name__ == "__main__":
    main()
