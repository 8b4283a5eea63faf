#!/usr/bin/env python3
"""The import graph of the top-level modules of src/: no cycles allowed.

Usage: python3 scripts/check-imports.py [src-dir]

Reads every .rs file under src/ (the library: src/main.rs is a separate
crate that uses the library through `tidewater::`), and records an edge
A -> B when code of top-level module A names `crate::B` (in a `use`, also
inside `use crate::{...}` groups, or in a path expression) or reaches B
through `super::` out of A. Comments, doc comments, string and char
literals, `#[cfg(test)]` items (test modules, test-only functions) and test
files (`tests.rs`, `*_tests.rs`) are ignored: tests may reach anywhere.
Items of the crate root (src/lib.rs, such as `crate::lock`) are the node
`lib`.

Prints the graph, one module per line with what it imports, and exits 1
with the cycles when there is one (0 otherwise).
"""

import os
import re
import sys


def strip_comments_and_literals(src):
    """The source with comments, strings and char literals blanked out
    (newlines kept, so that positions stay meaningful)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":  # line comment, doc comment
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and nxt == "*":  # block comment (nested)
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
            continue
        m = re.match(r'b?r(#*)"', src[i:i + 260]) if c in "rb" and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) else None
        if m:  # raw string
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append("\n" * src.count("\n", i, j) + '""')
            i = j
            continue
        if c == '"':  # string
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append("\n" * src.count("\n", i, j) + '""')
            i = j + 1
            continue
        if c == "'":  # char literal, or a lifetime
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def skip_item(src, i):
    """The index just past the item that starts at or after `i`: through
    its matching `}` or, for an item without a body, its `;`."""
    depth = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return n


def strip_cfg_test(src):
    """Remove every item marked `#[cfg(test)]` (with its other attributes)."""
    pattern = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
    while True:
        m = pattern.search(src)
        if not m:
            return src
        end = m.end()
        # Further attributes of the same item.
        while True:
            a = re.match(r"\s*#\s*\[", src[end:])
            if not a:
                break
            depth, j = 0, end + a.end() - 1
            while j < len(src):
                if src[j] == "[":
                    depth += 1
                elif src[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = j + 1
        end = skip_item(src, end)
        src = src[:m.start()] + "\n" * src.count("\n", m.start(), end) + src[end:]


def module_path(root, path):
    """`src/source/tail/mod.rs` -> ["source", "tail"]; lib.rs -> []."""
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def use_group_heads(text):
    """The first segment of each path in a `{...}` use group (nested groups
    included: `{a::{b, c}, d}` -> a, d)."""
    heads, depth, token = [], 0, ""
    for c in text:
        if c == "{":
            if depth == 0:
                token = token.strip()
                if token:
                    heads.append(token.split("::")[0].strip())
            depth += 1
            token = ""
        elif c == "}":
            depth -= 1
            token = ""
        elif c == "," and depth == 0:
            token = token.strip()
            if token:
                heads.append(token.split("::")[0].strip())
            token = ""
        elif depth == 0:
            token += c
    token = token.strip()
    if token:
        heads.append(token.split("::")[0].strip())
    return [h.split(" as ")[0].strip() for h in heads]


def imports(src, mod, top_modules):
    """Top-level modules (or "lib") that `src`, the code of module `mod`,
    names."""
    found = set()
    # crate::{a, b::c}
    for m in re.finditer(r"\bcrate\s*::\s*\{", src):
        body_start = m.end()
        depth, j = 1, body_start
        while j < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        for head in use_group_heads(src[body_start:j - 1]):
            if head == "self":
                continue
            found.add(head if head in top_modules else "lib")
    for m in re.finditer(r"\bcrate\s*::\s*([A-Za-z_][A-Za-z0-9_]*)", src):
        name = m.group(1)
        found.add(name if name in top_modules else "lib")
    # super::super::x from a nested module
    for m in re.finditer(r"\b((?:super\s*::\s*)+)([A-Za-z_][A-Za-z0-9_]*|\{)", src):
        ups = m.group(1).count("super")
        if ups < len(mod):
            continue  # stays inside the top-level module
        if ups > len(mod):
            continue  # not valid Rust
        if m.group(2) == "{":
            body_start = m.end()
            depth, j = 1, body_start
            while j < len(src) and depth:
                depth += {"{": 1, "}": -1}.get(src[j], 0)
                j += 1
            names = use_group_heads(src[body_start:j - 1])
        else:
            names = [m.group(2)]
        for name in names:
            found.add(name if name in top_modules else "lib")
    return found


def graph(root):
    top_modules = set()
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        if entry in ("lib.rs", "main.rs", "tests.rs") or entry.endswith("_tests.rs"):
            continue
        if entry.endswith(".rs"):
            top_modules.add(entry[:-3])
        elif os.path.isdir(path) and os.path.exists(os.path.join(path, "mod.rs")):
            top_modules.add(entry)
    edges = {m: set() for m in top_modules | {"lib"}}
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            if os.path.relpath(path, root) == "main.rs":
                continue  # the binary: a crate of its own
            if f == "tests.rs" or f.endswith("_tests.rs"):
                continue
            mod = module_path(root, path)
            node = mod[0] if mod else "lib"
            with open(path, encoding="utf-8") as fh:
                src = strip_cfg_test(strip_comments_and_literals(fh.read()))
            for dep in imports(src, mod, top_modules):
                if dep != node:
                    edges[node].add(dep)
    return edges


def cycles(edges):
    """Every strongly connected component with more than one module
    (Tarjan), each as a list of modules."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_cycle(edges, component):
    """A concrete cycle through the component: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}

    def walk(v):
        for w in sorted(edges[v]):
            if w == start and len(path) > 1:
                return True
            if w in members and w not in seen:
                seen.add(w)
                path.append(w)
                if walk(w):
                    return True
                path.pop()
        return False

    walk(start)
    return " -> ".join(path + [start])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src")
    edges = graph(root)
    width = max(len(m) for m in edges)
    for m in sorted(edges):
        print(f"{m:<{width}} -> {' '.join(sorted(edges[m])) or '(nothing)'}")
    found = cycles(edges)
    if found:
        for component in found:
            print(
                f"import cycle among {', '.join(component)}: e.g. {one_cycle(edges, component)}",
                file=sys.stderr,
            )
        return 1
    print("no import cycles between the top-level modules", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
