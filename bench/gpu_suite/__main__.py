import sys

from bench.gpu_suite.cli import main

sys.exit(main())
