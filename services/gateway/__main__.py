"""`python -m services.gateway`: the same as `loopd-server gateway`."""

from services.gateway.main import main

if __name__ == "__main__":
    main()
