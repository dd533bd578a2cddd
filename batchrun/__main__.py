import sys

from batchrun.cli.main import main

sys.exit(main())
