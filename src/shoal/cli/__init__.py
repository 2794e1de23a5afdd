"""The ``shoal`` command line (Typer + Rich); it only talks to the SDK."""
