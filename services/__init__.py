"""loopd server processes: the gateway, brain and hands services and the core they share."""
