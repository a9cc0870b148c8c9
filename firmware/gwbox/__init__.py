"""gwbox: protected modem link with keepalive and cluster failover (MicroPython + CPython)."""
VERSION = "0.1.0"

# Modules write `_NAME = const(value)` for module-private constants: MicroPython's
# compiler folds them into the code (no global, no interned name on a device heap);
# on CPython const() is the identity.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x
