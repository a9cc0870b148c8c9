"""Where the box's resident imports go: heap held by each module main.py keeps loaded,
as .mpy, imported one at a time in dependency order (gc.mem_alloc() after a collection,
each module's bytecode, constants, interned names and objects; a package's own
__init__ counted with its first module). A diagnostic for docs/memory.md, not part of
`make bench` (mp_box_heap.py has the totals). Run under micropython from build/mpy
(after `make test` or `make bench` built it), e.g. on the 32-bit interpreter:

    cd build/mpy && MICROPYPATH=unix:lib ../../../shared/tools/micropython32/micropython \
        -X heapsize=256K ../../bench/mp_import_costs.py

Prints one line per module, `bytes name`, then the total.
"""
import gc
import sys

MODULES = ("board", "machine", "gwbox.ticks", "gwbox.errors", "gwbox.events", "gwbox.wire",
           "gwbox.crypto.aes", "gwbox.crypto.mac", "gwbox.crypto.entropy", "gwbox.config", "gwbox.sa",
           "gwbox.tunnel", "gwbox.heartbeat", "gwbox.session", "gwbox.endpoint", "gwbox.outbox", "gwbox.cluster",
           "gwbox.link.framing", "gwbox.link.line", "gwbox.link.modem", "gwbox.box", "gwbox.port.device",
           "gwbox.port.udplan")

gc.collect()
start = prev = gc.mem_alloc()
for name in MODULES:
    before = set(sys.modules)
    __import__(name)
    gc.collect()
    now = gc.mem_alloc()
    pulled = sorted(m for m in sys.modules if m not in before and m != name)
    print("%6d %s%s" % (now - prev, name, (" (with " + ", ".join(pulled) + ")") if pulled else ""))
    prev = now
print("%6d total" % (prev - start))
