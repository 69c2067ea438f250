"""`python -m zcrxprof` is the `zcrxprof` command."""
import sys

from zcrxprof.cli import main

sys.exit(main())
