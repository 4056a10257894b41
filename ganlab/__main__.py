import sys

from ganlab.cli.app import main

sys.exit(main())
