"""The command line: one module per sub-command over one error → exit-code map."""
