"""gwbox: protected modem link with keepalive and cluster failover (MicroPython + CPython)."""
VERSION = "0.1.0"
# Bytes of a policy, at most: what the console's `load` holds, what the store saves and reads,
# and what `gwbox config check` lets through (a few KB is a big policy; the heap must hold it).
POLICY_MAX = 12288

# Modules write `_NAME = const(value)` for module-private constants: MicroPython's
# compiler folds them into the code (no global, no interned name on a device heap);
# on CPython const() is the identity.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x


def forget(*names):
    """Drop loaded modules (full names) so their code can leave the heap; each is imported
    again when next needed. Out of sys.modules *and* off its package, where `import a.b` also
    put it: a module that is still an attribute of its package stays alive (docs/memory.md)."""
    import sys
    for full in names:
        if sys.modules.pop(full, None) is not None:
            i = full.rfind(".")
            owner = sys.modules.get(full[:i])
            name = full[i + 1:]
            if owner is not None and hasattr(owner, name):
                delattr(owner, name)
