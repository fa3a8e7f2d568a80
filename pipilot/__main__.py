import sys

from pipilot.cli import main

sys.exit(main())
