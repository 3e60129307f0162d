import sys

from tinygrad_mlp.cli import main

sys.exit(main())
