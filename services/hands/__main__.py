"""`python -m services.hands`: the same as `loopd-server hands`."""

from services.hands.main import main

if __name__ == "__main__":
    main()
