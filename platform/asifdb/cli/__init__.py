"""The `asifdb` command line: a module per command group (`db`, `licenses`, `keys`, `jobs`,
`predict`, `reencode`, `curate`, `ann`, `audit`, `encoders`, `erasure`), each parsing, calling
one service and rendering its public schema; `main` registers them all; `shell` holds the one
way a command opens the platform. Run as `asifdb` or `python -m asifdb.cli`."""

from asifdb.cli.main import app, main

__all__ = ["app", "main"]
