#!/usr/bin/env python3
"""No module of the library imports one that imports it back.

    python3 .ci/acyclic.py [SRC_DIR]      # default: src

The check `cargo modules dependencies --lib --acyclic` would make, without building
cargo-modules (it pulls in rust-analyzer and takes longer to build than our whole test
suite). Every file under SRC_DIR (and every inline `mod name {` block in it) is a module;
an edge A -> B is a path A names that resolves into module B: `use` trees and paths
written in code (`crate::..`, `super::..`, `self::..`, and `child::item` when `child` is a
module there). Comments, string literals and `#[cfg(test)]` modules are ignored. A module naming its own
descendants or ancestors counts like any other edge (a parent re-exporting a child that
uses the parent's items is a cycle too). Prints every strongly connected component of two
or more modules with one edge of each pair, and exits 1 if there is any; 0 otherwise.
"""

import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main") and len(rel) == 1:
        return ("crate",)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return ("crate", *rel)


def strip(text):
    """Removes comments, string/char literals and #[cfg(test)] modules."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and text.startswith("'\\", i)):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'])'", text[i:])
            if m:
                i += m.end()
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # Drop #[cfg(test)] items (a `mod tests { ... }` block or a single item).
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code)
        if not m:
            break
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[: m.start()] + code[j:]
    return code


def inline_modules(code, base):
    """(module, code) for the file's own module and each inline `mod name { }` in it."""
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        spans.append((m.start(), j, m.group(1)))
    result = []

    def walk(start, end, module):
        inner = [s for s in spans if s[0] >= start and s[1] <= end and (s[0], s[1]) != (start, end)]
        top = [s for s in inner if not any(o[0] < s[0] and s[1] <= o[1] and o != s for o in inner)]
        own, pos = [], start
        for s in sorted(top):
            own.append(code[pos:s[0]])
            pos = s[1]
            walk(s[0], s[1], module + (s[2],))
        own.append(code[pos:end])
        result.append((module, "".join(own)))

    walk(0, len(code), base)
    return result


def use_paths(code):
    """Every path a module names: the expanded `use` trees and inline crate/super paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand(re.sub(r"\s+", "", m.group(1))))
    body = re.sub(r"\buse\s+[^;]+;", "", code)
    for m in re.finditer(r"(?<![\w:])((?:\w+)(?:::(?:super|\w+))+)", body):
        paths.append(m.group(1).split("::"))
    return paths


def expand(tree):
    """`a::{b,c::{d,e}}` -> [[a,b],[a,c,d],[a,c,e]]; `as` renames dropped."""
    tree = re.sub(r"\bas\w+", "", tree.replace(" as ", " "))
    m = re.match(r"^([^{]*?)(?:::)?\{(.*)\}$", tree)
    if not m:
        return [tree.split("::")]
    prefix = [p for p in m.group(1).split("::") if p]
    parts, depth, cur = [], 0, ""
    for ch in m.group(2):
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            out.extend(prefix + sub for sub in expand(p))
    return out


def resolve(path, module, modules):
    """The module a path points into, or None (std, other crates, own items)."""
    if path[0] == "crate":
        cur, rest = ("crate",), path[1:]
    elif path[0] in ("super", "self"):
        cur, rest = module, path
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                cur = cur[:-1]
            rest = rest[1:]
    else:
        # A plain path: a child or sibling module named at the start (`use child::X` after
        # `mod child;`), as Rust 2018 resolves it.
        cur, rest = module, path
        if cur + (rest[0],) not in modules:
            return None
    target = cur
    for p in rest:
        if target + (p,) in modules:
            target = target + (p,)
        else:
            break
    return target


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = []
    for root, dirs, names in os.walk(src):
        if os.path.relpath(root, src).split(os.sep)[0] == "bin":
            continue
        files += [os.path.join(root, n) for n in names if n.endswith(".rs")]
    files = [f for f in files if os.path.relpath(f, src) != "main.rs"]
    code_of = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for module, code in inline_modules(strip(fh.read()), module_of(f, src)):
                code_of[module] = code_of.get(module, "") + code
    modules = set(code_of)
    edges = {m: set() for m in modules}
    for module, code in code_of.items():
        for path in use_paths(code):
            target = resolve(path, module, modules)
            if target and target != module and target != ("crate",):
                edges[module].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    name = lambda m: "::".join(m)
    if not sccs:
        print(f"acyclic: {len(modules)} modules, {sum(map(len, edges.values()))} edges, no cycle")
        return 0
    for comp in sccs:
        print("cycle: " + ", ".join(name(m) for m in comp))
        for a in comp:
            for b in sorted(edges[a]):
                if b in comp:
                    print(f"    {name(a)} -> {name(b)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
