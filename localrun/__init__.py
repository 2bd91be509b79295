"""`make local`: the TMDS emulator, the worker and the app on 127.0.0.1, no AWS needed.

`python -m localrun` starts the three as child processes, relays their output with a
prefix each, prints the page's URL, and stops all three on Ctrl-C or SIGTERM. If a
child dies or a port is busy it says so in one line and exits non-zero.
"""
