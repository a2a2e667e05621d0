"""One module per subcommand, each owning its argparse parser and its run; `_common` holds what
they share (settings, report writing, signal handling, exit codes).
"""
