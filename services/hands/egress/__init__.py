"""Egress of a hands worker's sandboxes: the only way out is a per-sandbox socket to the worker's proxy.

A sandbox whose profile allows a network still has none of its own: its executor forwards TCP from
its loopback to a unix socket in its channel directory (gate.py listens there), and hands relays each
connection to the worker's egress proxy (proxy/, a mitmproxy program in a venv of its own, started by
supervisor.py), telling it which sandbox's policy applies. The proxy decides by host name, resolves
the name itself, puts secrets on requests at the edge and reports each decision back (ca.py makes
the certificate authority it intercepts TLS with). Kept free of imports beyond the standard library
here, since the proxy's interpreter imports this package too.
"""
