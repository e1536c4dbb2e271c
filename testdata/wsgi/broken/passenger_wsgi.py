# A startup file that fails at import time, for the loader's error handshake.
print("about to fail")
raise ImportError("broken fixture: no module named frobnicate")
