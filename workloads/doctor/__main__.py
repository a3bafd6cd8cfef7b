import sys

from workloads.doctor.doctor import main

if __name__ == "__main__":
    sys.exit(main())
