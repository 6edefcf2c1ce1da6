import sys

from .cli import main

if __name__ == "__main__":  # a spawned worker process may import this module; only a command runs main
    sys.exit(main())
