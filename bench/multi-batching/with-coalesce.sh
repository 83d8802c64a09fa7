#!/bin/sh
# with-coalesce.sh MS BINARY CONF: sets COALESCE_MS = MS in the loadtest's override (before
# its final `return 1;`), then runs BINARY on it.
ms=$1; bin=$2; conf=$3
sed -i "s/^return 1;\$/\$CONFIG{COALESCE_MS} = $ms;\nreturn 1;/" "$conf"
grep -q "COALESCE_MS} = $ms;" "$conf" || { echo "with-coalesce: could not set COALESCE_MS" >&2; exit 1; }
exec "$bin" "$conf"
