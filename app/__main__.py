import sys

try:
    import fastapi  # noqa: F401  (the dependencies: are they in this Python?)
except ModuleNotFoundError:
    sys.exit(
        f"{sys.executable} does not have this project's dependencies installed.\n"
        "Run `make install` once, then either `.venv/bin/python -m app ...` or activate the "
        "environment first (`. .venv/bin/activate`) and use `python -m app ...`."
    )

from app.cli import main  # noqa: E402

main()
