"""`python -m minigpt.experiments`: the README figures (figures.py)."""

from .figures import main

raise SystemExit(main())
