"""`python -m router.fake_upstream --port N ...` runs the fake provider in the foreground."""

from __future__ import annotations

from router.fake_upstream.server import main

raise SystemExit(main())
