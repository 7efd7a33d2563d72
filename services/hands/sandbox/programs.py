"""Small Python programs the Docker backend runs inside a sandbox with `python3 -c`.

They are shipped with each call instead of being baked into the image, so any image with python3 works.
"""

from __future__ import annotations

# The sandbox's PID 1. A timeout kills every process of the sandbox user with `kill -KILL -1`, which
# spares only PID 1 and the killer; with a separate init (tini) the idle child would die and take the
# container with it. Being PID 1, it also adopts and reaps what the killed trees leave behind, so
# zombies never pile up against the pids limit.
INIT = """
import os, signal
wanted = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
while signal.sigwait(wanted) == signal.SIGCHLD:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
"""

# Runs argv with its own output pipes and relays them until every holder has closed them. The Docker
# engine closes an exec's streams two seconds after its first process exits, even while background
# children still write; relaying gives the usual pipe semantics (a call ends when its output does).
RELAY = """
import os, selectors, subprocess, sys
PIPE = subprocess.PIPE
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=PIPE, stderr=PIPE)
sel = selectors.DefaultSelector()
sel.register(proc.stdout, selectors.EVENT_READ, 1)
sel.register(proc.stderr, selectors.EVENT_READ, 2)
while sel.get_map():
    for key, _ in sel.select():
        data = os.read(key.fileobj.fileno(), 65536)
        if not data:
            sel.unregister(key.fileobj)
        while data:
            data = data[os.write(key.data, data):]
code = proc.wait()
sys.exit(128 - code if code < 0 else code)
"""
