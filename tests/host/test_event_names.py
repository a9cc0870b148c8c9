"""The event vocabulary (firmware/gwbox/events.py): every name a state machine emits, or the
box reacts to, is one of the names listed there. The firmware writes each name out as a
string where it is emitted (constants would cost a device an interned name each, for good:
docs/memory.md), so this check, not an attribute lookup, catches a misspelt one."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware", "gwbox")

# emitters: Event("x", ...), self._event("x", ...), m._emit("x", ...), self.drv.event("x", ...);
# reactions: n == "x", e.name == "x" (the box and the port route events by name)
EMITTED = re.compile(r'(?:\b_event|\b_emit|\bdrv\.event|\bEvent)\(\s*"([a-z_]+)"')
COMPARED = re.compile(r'\b(?:n|name|e\.name)\s*[!=]=\s*"([a-z_]+)"')


def vocabulary():
    text = open(os.path.join(FIRMWARE, "events.py"), encoding="utf-8").read()
    block = text.split("# VOCABULARY:\n", 1)[1].split("\n\n", 1)[0]
    return [w for ln in block.splitlines() for w in ln.lstrip("#").split()]


def sources():
    for d, _, files in os.walk(FIRMWARE):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(d, f)
                yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


def test_the_vocabulary_is_a_list_of_distinct_names():
    names = vocabulary()
    assert len(names) >= 40 and len(set(names)) == len(names), names
    assert all(re.fullmatch(r"[a-z_]+", n) for n in names), names


def test_every_name_emitted_or_reacted_to_is_in_the_vocabulary():
    known = set(vocabulary())
    port_lines = {"console", "status", "out_of_memory", "console_error"}  # the port's own lines
    emitted, unknown = set(), []
    for rel, text in sources():
        for m in EMITTED.finditer(text):
            emitted.add(m.group(1))
            if m.group(1) not in known:
                unknown.append((rel, m.group(1)))
        if rel.endswith(("box.py", "device.py", "cluster.py")):
            for m in COMPARED.finditer(text):
                if m.group(1) not in known | port_lines:
                    unknown.append((rel, m.group(1)))
    assert not unknown, unknown
    # and the list is not a stale superset: nearly every name has a literal emitter
    assert len(emitted) >= len(known) - 3, sorted(known - emitted)
