"""The egress proxy program: mitmproxy with loopd's addon, run from its own venv (.venv-egress).

It imports only the standard library, mitmproxy and what deploy/egress/requirements.lock pins, never
loopd's own dependencies: mitmproxy's pins conflict with them, so it is a separate process.
"""
