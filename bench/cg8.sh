#!/bin/sh
# cg8.sh CMD...: drop the page cache, run CMD in the cgroup-v1 memory group "ooc"
# (create it first: mkdir /sys/fs/cgroup/memory/ooc; echo 8G > .../memory.limit_in_bytes)
sync; echo 3 > /proc/sys/vm/drop_caches
echo 0 > /sys/fs/cgroup/memory/ooc/memory.max_usage_in_bytes 2>/dev/null
exec sh -c 'echo $$ > /sys/fs/cgroup/memory/ooc/tasks; exec "$@"' sh "$@"
