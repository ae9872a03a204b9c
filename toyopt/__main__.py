import sys

from toyopt.cli import main

sys.exit(main())
