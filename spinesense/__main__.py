import sys

from spinesense.cli import main

sys.exit(main())
