"""What the benches read from /proc about a server: its process tree (a server and the workers
it forks) and the CPU time they used, user and kernel apart."""
import os

TICK = os.sysconf("SC_CLK_TCK")


def tree(root):
    """root and every descendant, by parent pid from /proc/<pid>/stat."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu(root):
    """(user s, kernel s) summed over root's process tree: fields 14 and 15 of /proc/pid/stat."""
    user = kernel = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        user += int(fields[11])
        kernel += int(fields[12])
    return user / TICK, kernel / TICK
