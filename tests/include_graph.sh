#!/bin/sh
# include_graph.sh - checks the module walls of the source tree (run by
# `make test`): no include cycle between the modules of src/ format/ io/
# kernels/ split-tool/; src/ never includes io/ internals (only io/'s public
# headers); format/ includes nothing but itself and kernels' format facts;
# kernels/ and io/ include nothing from src/; nothing outside bench/
# includes bench/ headers; only io/ includes <liburing.h>. Prints the
# offending include and exits 1 on a violation.
set -e
cd "$(dirname "$0")/.."
fail=0
say() { echo "include_graph: $*" >&2; fail=1; }

# dir of a quoted include, found the way the Makefile's -I order finds it
where() {
    for d in src format split-tool kernels io bench; do
        [ -f "$d/$1" ] && { echo "$d"; return; }
    done
    echo "?"
}

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in src/*.[ch] format/*.[ch] io/*.[ch] kernels/*.[ch] split-tool/*.[ch]; do
    dir=${f%%/*}
    grep -o '^#include "[^"]*"' "$f" | sed 's/#include "\(.*\)"/\1/' | while read -r h; do
        if [ -f "$dir/$h" ]; then hd=$dir; else hd=$(where "$h"); fi
        echo "$f $hd/$h" >>"$edges"
        case "$dir:$hd:$h" in
        src:io:reader_impl.h|src:io:ecache.h|src:io:reader.h) say "$f includes io internal $h" ;;
        format:src:*|format:io:*|format:split-tool:*|format:bench:*) say "$f (format/) includes $hd/$h" ;;
        format:kernels:*) [ "$h" = qformat.h ] || [ "$h" = quant_blocks.h ] || say "$f (format/) includes kernels/$h beyond the format facts" ;;
        kernels:src:*|kernels:io:*|kernels:format:*|kernels:split-tool:*) say "$f (kernels/) includes $hd/$h" ;;
        io:src:*|io:split-tool:*) say "$f (io/) includes $hd/$h" ;;
        *:bench:*) say "$f includes bench/$h" ;;
        esac
    done
    case $f in io/*) ;; *) grep -q '^#include <liburing.h>' "$f" && say "$f includes <liburing.h> (only io/ may)" ;; esac
done

# Cycles between modules (a module is a file pair x.c/x.h; a private
# x_impl.h belongs to module x): repeatedly drop modules that include no
# remaining module; whatever is left sits on a cycle.
sed -e 's#[^ ]*/##g' -e 's/\.[ch]//g' -e 's/_impl\b//g' "$edges" | awk '$1 != $2' | sort -u >"$edges.m"
while :; do
    awk 'NR==FNR {has[$1]=1; next} ($2 in has) {print}' "$edges.m" "$edges.m" >"$edges.n"
    if cmp -s "$edges.n" "$edges.m"; then break; fi
    mv "$edges.n" "$edges.m"
done
if [ -s "$edges.m" ]; then
    say "include cycle between modules (module -> module it includes):"
    sed 's/^/    /' "$edges.m" >&2
fi
rm -f "$edges.m" "$edges.n"
[ $fail = 0 ] && echo "include graph: no cycles, module walls hold"
exit $fail
