import sys

from ffn_calc.cli.app import main

sys.exit(main())
