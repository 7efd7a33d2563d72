"""`python -m services.brain`: the same as `loopd-server brain`."""

from services.brain.main import main

if __name__ == "__main__":
    main()
