#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

For each crate source directory given (default: every crate of the workspace), a module's
imports are the `crate::<module>` paths in its code (comments aside) and the crate-root items
it names through `crate::<Item>` (mapped to the module that defines them via the root's
`pub use`). A cycle is reported with the modules in it. Usage: tests/module_cycles.py [SRC...]
"""
import glob
import os
import re
import sys


def modules(src):
    """Top-level module name -> the code of its files, comments stripped."""
    code = {}
    for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(path, src)[:-3]
        if os.path.basename(rel) == "tests":
            continue  # a module's tests may use anything
        top = rel.split(os.sep)[0]
        text = open(path).read()
        # Unit tests sit at the end of their file, after `#[cfg(test)]`.
        text = text.split("#[cfg(test)]")[0]
        lines = [l for l in text.splitlines() if not l.lstrip().startswith("//")]
        code[top] = code.get(top, "") + "\n".join(lines)
    return code


def graph(src):
    code = modules(src)
    root = code.pop("lib", "") + code.pop("main", "")
    # `pub use module::{A, B}` / `pub use module::A` at the root: items named crate::A.
    item_home = {}
    for module, items in re.findall(r"pub use (\w+)::\{?([\w, ]+)\}?;", root):
        for item in items.split(","):
            item_home[item.strip()] = module
    edges = {}
    for module, text in code.items():
        deps = set()
        for name in re.findall(r"crate::(\w+)", text):
            dep = item_home.get(name, name)
            if dep in code and dep != module:
                deps.add(dep)
        edges[module] = deps
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    sources = sys.argv[1:] or sorted(
        glob.glob(os.path.join(root, "shared", "*", "src"))
        + glob.glob(os.path.join(root, "services", "*", "src"))
        + glob.glob(os.path.join(root, "load-tests", "*", "src"))
    )
    failed = False
    for src in sources:
        for component in cycles(graph(src)):
            failed = True
            print(f"{os.path.relpath(src, root)}: module cycle: {' <-> '.join(component)}")
    if failed:
        sys.exit(1)
    print(f"no module cycles in {len(sources)} crates")


if __name__ == "__main__":
    main()
