"""The embedded local stack: an embedded PostgreSQL and every loopd role under one supervisor."""
