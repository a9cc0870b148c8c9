"""gwbox: protected modem link with keepalive and cluster failover (MicroPython + CPython)."""
VERSION = "0.1.0"
