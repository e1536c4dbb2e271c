# A startup file that fails at import time, for the runner's error handshake.
print("about to fail")
raise ImportError("broken asgi fixture: no module named frobnicate")
