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

# Empties a directory for a restore. It first kills every process of the sandbox user but PID 1 and
# itself, and waits until they are gone, so no leftover of an earlier call writes into the restored
# files. Directories the user made unwritable or unreadable are opened up first (the user owns them).
CLEAR = """
import os, shutil, signal, stat, sys, time
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:
    pass
me, deadline = os.getpid(), time.monotonic() + 5

def running():
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False

while running():
    if time.monotonic() > deadline:
        sys.exit("processes of the sandbox user survived SIGKILL")
    time.sleep(0.01)

def open_up(path):
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode):
        os.chmod(path, stat.S_IMODE(mode) | 0o700)

root = sys.argv[1]
open_up(root)
for top, dirs, _ in os.walk(root):
    for name in dirs:
        open_up(os.path.join(top, name))
for entry in os.scandir(root):
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)
"""
