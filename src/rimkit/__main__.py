import sys

from rimkit.cli import main

sys.exit(main())
