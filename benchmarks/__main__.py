"""`python -m benchmarks`: set BLAS threads from argv before numpy is imported, then run."""

import sys

from benchmarks.common import set_threads_from_argv

set_threads_from_argv(sys.argv[1:])

from benchmarks.run import main  # noqa: E402  (imports numpy: after the thread variables)

sys.exit(main())
