import sys

from ffn_calc.cli import run

sys.exit(run())
