"""Command-line interface: one ``vidrestore`` command with subcommands."""
