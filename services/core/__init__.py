"""Code shared by every loopd process: settings, errors, the event log, the bus and the artifact store."""
