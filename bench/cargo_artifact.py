"""Print the executable of the target named on the command line from `cargo ... --message-format=json` on stdin.

    cargo bench --bench muse_vs_torch --no-run --message-format=json | python3 bench/cargo_artifact.py muse_vs_torch
"""

import json
import sys

for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] and m.get("executable"):
        print(m["executable"])
