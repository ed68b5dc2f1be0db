#!/bin/bash
# The layer rules of controller/src (docs/controller-layers.md), checked by
# grep.  Run by `make -C controller check` and before the unit tests; exits
# 1 and names every file and line that breaks a rule.
set -u
shopt -s lastpipe   # broke() runs last in its pipelines and sets fail here
cd "$(dirname "$0")/src" || exit 2

fail=0
broke() {   # rule, then the offending lines (file:line:text) on stdin
    local rule=$1 lines
    lines=$(cat)
    if [ -n "$lines" ]; then
        echo "check-layers: $rule" >&2
        sed 's/^/    /' <<<"$lines" >&2
        fail=1
    fi
}

# Quoted includes of the files under a folder that are not in the allowed
# list of prefixes (a prefix ending in / allows a folder, else one file).
includes_outside() {   # folder, allowed prefixes...
    local dir=$1
    shift
    grep -rnoE '^#include "[^"]+"' "$dir" | while IFS= read -r hit; do
        local inc=${hit#*#include \"}
        inc=${inc%\"}
        local ok=0
        for allow in "$@"; do
            case $allow in
            */) [[ $inc == "$allow"* ]] && ok=1 ;;
            *) [[ $inc == "$allow" ]] && ok=1 ;;
            esac
        done
        [ $ok = 1 ] || echo "$hit"
    done
}

# The code of a file without its comments (string literals stay).
code_of() {
    ${CC:-cc} -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null
}

# 1. Every quoted include names its folder, relative to src/.
grep -rnE '^#include "[^/"]+"' . | grep -v '"ledger_sql.inc"' |
    broke 'an include names its folder ("store/store.h", not "store.h")'

# 2. Only store/ talks to Redis: hiredis, its types, raw commands, key
#    names and Lua scripts live there and nowhere else.
grep -rnE '#include <hiredis|\bredis(Reply|Context|Command|AppendCommand|GetReply)\b|\bfreeReplyObject\b' . |
    grep -v '^\./store/' | broke 'hiredis outside store/'
grep -rnE '\bstore_(cmd|cmdargv|cmdargv_window|key|eval)\b|"store/private\.h"' . |
    grep -v '^\./store/' | broke 'raw store commands or keys outside store/'
grep -rnE '"(project|compute|projects|computes|usage|usage-hours|hist|transfer-seen|export|ports|tokens|metrics):(%|[a-z])' . |
    grep -v '^\./store/' | broke 'a Redis key name outside store/ (store/keys.h)'
grep -rnE "redis\.call|\bEVAL\b" . | grep -v '^\./store/' | broke 'a Lua script outside store/ (store/scripts.c)'

# 3. Only api/ knows HTTP: the server library and the HTTP statuses of
#    the API.  The core answers with error kinds (core/error.h).
grep -rnE '#include <microhttpd\.h>|\bMHD_[A-Za-z_]+' . | grep -v '^\./api/' |
    broke 'libmicrohttpd outside api/'
for f in core/*.c core/*.h; do
    code_of "$f" | grep -nE '\b(400|401|403|404|405|409|413|414|429|500|502|503|504)\b' |
        sed "s|^|./$f:|"
done | broke 'an HTTP status in core/ (return an err_kind; api/request.c maps it)'

# 4. Each folder includes only what is below it.
includes_outside util util/ | broke 'util/ includes only util/'
includes_outside store store/ util/ core/compute.h core/state.h |
    broke 'store/ includes only store/, util/ and the records (core/compute.h, core/state.h)'
includes_outside backend backend/ util/ core/compute.h core/state.h |
    broke 'backend/ sees no store and no lifecycle: backend/, util/, core/compute.h, core/state.h'
includes_outside core core/ store/store.h backend/backend.h util/ |
    broke 'core/ includes core/, store/store.h, backend/backend.h and util/ only (no api/, no billing/)'
includes_outside billing billing/ store/store.h store/usage_format.h backend/backend.h \
    core/compute.h core/state.h util/ ledger_sql.inc |
    broke 'billing/ reaches Redis through store/store.h only, and knows no api/ or lifecycle'
grep -rnE '\bstore_[a-z_]+\(' backend | broke 'a store call in backend/'

# 5. One state machine: transitions are applied by id (core/state.c's
#    table), never with lists of states written out.
grep -rnE '"(creating|running|suspending|suspended|resuming|failed|deleting)(,[a-z]+)+"' . |
    broke 'a list of states outside the transition table (core/state.c)'
grep -rnE '\bstore_transition\(' . | grep -vE '^\./(store/|core/lifecycle\.c:)' |
    broke 'a transition applied outside core/lifecycle.c (lc_move)'

# 6. One string buffer (util/strbuf.h): nothing else grows memory by hand.
grep -rnE '\brealloc\(' . ../cli | grep -v '^\./util/strbuf\.c:' |
    broke 'a hand-written growable buffer (use util/strbuf.h)'

if [ $fail = 0 ]; then
    echo "check-layers: ok"
fi
exit $fail
