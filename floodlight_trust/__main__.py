from __future__ import annotations

import sys

from floodlight_trust.cli import main

sys.exit(main())
