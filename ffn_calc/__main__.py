import sys

from ffn_calc.cli import main

sys.exit(main())
