"""libsetok's ABI: every exported symbol is a setok_* function declared in a
public header (engine/include/setok), and every function declared there is
exported. Run by meson with SETOK_LIB (the shared library) and
SETOK_SOURCE_ROOT set."""
import os
import re
import subprocess
import sys

DECLARATION = re.compile(r"^SETOK_API\b[^;{]*?\b(setok_[a-z0-9_]+)\s*\(", re.M)
UNMARKED = re.compile(r"^(?!SETOK_API|static|typedef|extern|struct|enum|union)"
                      r"[A-Za-z_][\w ]*[\s*](setok_[a-z0-9_]+)\s*\(")


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    return {line.split()[-1] for line in out.splitlines()
            if len(line.split()) == 3 and line.split()[1] in "TtWiDdBbRrV"}


def declared(include_dir):
    names, unmarked = set(), []
    for root, _, files in os.walk(include_dir):
        for f in files:
            if not f.endswith(".h"):
                continue
            text = open(os.path.join(root, f)).read()
            names |= set(DECLARATION.findall(text))
            # a function declared at the top level without SETOK_API would be hidden
            for line in text.splitlines():
                m = UNMARKED.match(line)
                if m:
                    unmarked.append(f"{f}: {m.group(1)}")
    return names, unmarked


def main():
    lib = os.environ.get("SETOK_LIB")
    root = os.environ.get("SETOK_SOURCE_ROOT")
    if not lib or not root:
        print("SETOK_LIB and SETOK_SOURCE_ROOT must be set")
        return 1
    names, unmarked = declared(os.path.join(root, "engine", "include", "setok"))
    symbols = exported(lib)
    failures = 0
    for s in sorted(symbols - names):
        print(f"FAIL exported but not a public function: {s}")
        failures += 1
    for s in sorted(names - symbols):
        print(f"FAIL declared SETOK_API but not exported: {s}")
        failures += 1
    for u in unmarked:
        print(f"FAIL declared without SETOK_API (hidden): {u}")
        failures += 1
    print(f"{len(symbols)} exported symbols, {len(names)} public declarations, "
          f"{failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
