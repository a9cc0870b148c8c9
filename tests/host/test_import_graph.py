"""The import graph of the firmware (gwbox) and the host tools (gwbox_tools): no circles,
counting the imports inside functions (a firmware module imported lazily, to keep a
device heap small, still depends on what it imports); the firmware imports no host tool
and no test; the host tools import no test. Why: a circle makes the load order decide
what works (a half-initialised module on a device heap), and tools that import tests
ship test code. Read from the sources' syntax trees; nothing is imported."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = (("firmware", "gwbox"), ("host_tools", "gwbox_tools"))


def modules(root, package):
    """{dotted module name: source path} of a package under ROOT/root."""
    found = {}
    for folder, _dirs, files in os.walk(os.path.join(ROOT, root, package)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, os.path.join(ROOT, root))[:-3].replace(os.sep, ".")
                found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def imported(name, path):
    """Every dotted name an import statement anywhere in the module names (for `from a
    import b`: a and a.b), relative imports resolved."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names.update(base + "." + a.name for a in node.names)
    return names


def graph():
    paths = {}
    for root, package in PACKAGES:
        paths.update(modules(root, package))
    return {m: imported(m, p) for m, p in paths.items()}


def circles(edges):
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_module_of_the_firmware_or_the_host_tools_is_in_an_import_circle():
    g = graph()
    edges = {m: {n for n in names if n in g and n != m} for m, names in g.items()}
    assert circles(edges) == []


def test_the_circle_finder_finds_a_circle_through_a_lazy_import():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_firmware_imports_no_host_tool_and_no_test_and_the_tools_no_test():
    tests = {f[:-3] for d in ("tests", "tests/host", "tests/firmware")
             for f in os.listdir(os.path.join(ROOT, d)) if f.endswith(".py")}
    tests.add("tests")
    for m, names in graph().items():
        tops = {n.split(".")[0] for n in names}
        assert not tops & tests, (m, sorted(tops & tests))
        if m.startswith("gwbox."):
            assert "gwbox_tools" not in tops, m
