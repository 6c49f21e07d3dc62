"""The layering as a build rule: each src/<layer>/ may include only its own headers and those of
the layers CMakeLists.txt says it uses (KBGAP_USES_<layer>, written to BUILD/layers.txt), and
every directory under src/ is a layer. Usage: layering_test.py SOURCE_DIR BUILD_DIR."""
import os
import re
import sys

SOURCE, BUILD = sys.argv[1], sys.argv[2]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/', re.M)


def main():
    uses = {}
    with open(os.path.join(BUILD, "layers.txt")) as f:
        for line in f:
            layer, _, deps = line.partition(":")
            uses[layer.strip()] = set(deps.split())
    src = os.path.join(SOURCE, "src")
    problems = []
    for layer in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, layer)):
            continue
        if layer not in uses:
            problems.append(f"src/{layer}/ is not a layer of CMakeLists.txt (KBGAP_LAYERS)")
            continue
        for root, _, files in os.walk(os.path.join(src, layer)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for used in sorted(set(INCLUDE.findall(text))):
                    if used != layer and used not in uses[layer]:
                        problems.append(f"{os.path.relpath(path, SOURCE)} includes {used}/, a "
                                        f"layer {layer} does not use (KBGAP_USES_{layer})")
    # The declared uses have no cycle.
    state = {}

    def visit(layer, trail):
        if state.get(layer) == "done":
            return
        if state.get(layer) == "open":
            problems.append("the layers use each other in a cycle: " + " -> ".join(trail + [layer]))
            return
        state[layer] = "open"
        for used in sorted(uses.get(layer, ())):
            visit(used, trail + [layer])
        state[layer] = "done"

    for layer in sorted(uses):
        visit(layer, [])
    for p in problems:
        print(p)
    print(f"{len(uses)} layers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
