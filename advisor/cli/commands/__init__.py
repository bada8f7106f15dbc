"""One module per ``advisor`` subcommand; each parses its options and formats its output."""
