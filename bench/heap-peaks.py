"""The heap at its peak, by the deepest frames of fitstream's own code that allocated it.

Reads heaptrack_print's flamegraph file of peak costs (`-F FILE --flamegraph-cost-type peak`):
one line per stack, frames separated by ';', the bytes last. Prints
    <label>, peak heap H MB
    <MB>  <frames, innermost first>      (the ten largest)
Used by bench/replay-heap.sh and bench/planner-heap.sh.
"""
import collections
import re
import sys

# Frames of the standard library and of allocation itself say nothing about who holds memory.
LIBRARY = re.compile(r"^(alloc|raw_vec|boxed|vec|map|set|node|btree|hash|rustc_entry|function"
                     r"|option|sync|spec_.*|iterator|string|str|slice|result|convert|clone"
                     r"|borrow|into_iter|rc|entry|append|cmp|mod|zip|cloned)\.rs$")


def main(path, label):
    by_stack, total = collections.Counter(), 0
    with open(path) as f:
        lines = [line.rstrip() for line in f if line.strip()]
    for line in lines:
        stack, _, n = line.rpartition(" ")
        n = int(n)
        total += n
        ours = []
        for frame in stack.split(";"):
            m = re.search(r"^(.*) \(([^()]*)\)$", frame)
            if not m or LIBRARY.match(m.group(2)) or m.group(2).startswith("/"):
                continue
            name = re.sub(r"<.*", "", m.group(1))[-40:]
            ours.append(f"{name} ({m.group(2)})")
        by_stack[" <- ".join(reversed(ours[-4:])) or "(outside fitstream)"] += n
    print(f"{label}, peak heap {total / 1e6:.1f} MB")
    for stack, n in by_stack.most_common(10):
        print(f"{n / 1e6:8.1f}  {stack[:200]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
