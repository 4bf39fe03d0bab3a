#!/usr/bin/env bash
# Point-in-time recovery of Velferd on PostgreSQL, checked end to end (docs/operations.md,
# "Backup and restore"). Not part of .ci/run: it makes two private clusters and runs for about
# a minute. It never touches another PostgreSQL: the clusters live in a temporary directory,
# listen on their own ports on 127.0.0.1 and on a socket in that directory, and are stopped and
# deleted at the end, whatever happens.
#
#   1. initdb a primary with WAL archiving on (archive_command copies each segment away);
#   2. run `velferd serve --demo` on it: the demo feed ingests device messages every few seconds;
#   3. once events are stored, take a base backup (pg_basebackup);
#   4. let ingest go on, then note a moment T with the event count committed at T (ingest is
#      held back for that instant by a table lock, so no event commits at T itself);
#   5. let ingest go on past T, switch the WAL segment so it is archived, stop velferd;
#   6. restore the base backup into a second cluster with restore_command and
#      recovery_target_time = T, start it, wait for recovery to end;
#   7. check: the restored cluster holds exactly the events committed at T — more than the base
#      backup had (WAL was replayed) and fewer than the primary has now (recovery stopped at T);
#      and velferd starts on it and answers /readyz.
#
# Usage: docs/scripts/pg-pitr-check.sh   (from the repository root, after `cargo build`)
# Settings: PGBIN (default /usr/lib/postgresql/15/bin), VELFERD (default target/debug/velferd),
# PITR_PORT (default 55432; the restored cluster takes the next port), PITR_HTTP_PORT (default 18480).
# Run as root, it runs the PostgreSQL binaries as the `postgres` user (initdb refuses root).

set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
VELFERD=$(realpath "${VELFERD:-target/debug/velferd}")
PORT=${PITR_PORT:-55432}
RESTORED_PORT=$((PORT + 1))
HTTP_PORT=${PITR_HTTP_PORT:-18480}
WORK=$(mktemp -d /tmp/velferd-pitr.XXXXXX)
chmod 755 "$WORK"
VELFERD_PID=

say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    set +e
    [ -n "$VELFERD_PID" ] && kill "$VELFERD_PID" 2>/dev/null && wait "$VELFERD_PID" 2>/dev/null
    for cluster in primary restored; do
        [ -f "$WORK/$cluster/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/$cluster" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

PSQL=$PGBIN/psql
[ -x "$PSQL" ] || PSQL=psql
psql_at() { # port, sql
    "$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d velferd -c "$2"
}

events_at() { psql_at "$1" "SELECT count(*) FROM device_event"; }

wait_for() { # seconds, description, command...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$((seconds * 4))"); do
        if "$@"; then return 0; fi
        sleep 0.25
    done
    say "FAILED: $what not within ${seconds}s"
    [ -f "$WORK/velferd.log" ] && tail -20 "$WORK/velferd.log"
    exit 1
}

[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL binaries in $PGBIN (set PGBIN)"; exit 2; }
[ -x "$VELFERD" ] || { echo "no velferd binary at $VELFERD (cargo build, or set VELFERD)"; exit 2; }
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PORT"; then
    echo "port $PORT is taken; set PITR_PORT"; exit 2
fi

say "1. primary: initdb in $WORK/primary, port $PORT, WAL archived to $WORK/archive"
mkdir -p "$WORK/archive"
chown postgres "$WORK" "$WORK/archive" 2>/dev/null || true
as_pg "$PGBIN/initdb" -D "$WORK/primary" -U postgres --auth=trust >/dev/null
cat >>"$WORK/primary/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $WORK/archive/%f && cp %p $WORK/archive/%f'
max_wal_senders = 3
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -l "$WORK/primary.log" -w start >/dev/null
as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres velferd

say "2. velferd serve --demo on it (the demo feed ingests every few seconds)"
URL="postgres://postgres@127.0.0.1:$PORT/velferd"
export VELFERD_JWT_SECRET=pitr-check-secret-that-is-at-least-32-bytes
export VELFERD_AUDIT_KEY=pitr-check-audit-key-that-is-at-least-32-bytes
VELFERD_DATABASE_URL=$URL VELFERD_BIND=127.0.0.1:$HTTP_PORT VELFERD_LOG=warn \
    "$VELFERD" serve --demo >"$WORK/velferd.log" 2>&1 &
VELFERD_PID=$!
has_events() { [ "$(events_at "$PORT" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 300 "the first events" has_events 1

say "3. base backup"
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$WORK/base" -X stream -c fast
AT_BACKUP=$(events_at "$PORT")
say "   events at the base backup: $AT_BACKUP (at least; ingest goes on)"

say "4. ingest goes on; the moment T"
wait_for 120 "events after the base backup" has_events $((AT_BACKUP + 2))
# No event commits while the lock is held: the count is exactly what is committed at T.
read -r AT_T T < <(psql_at "$PORT" "BEGIN; LOCK TABLE device_event IN EXCLUSIVE MODE;
    SELECT count(*) || ' ' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'
    FROM device_event; COMMIT;")
say "   T = $T with $AT_T events committed"

say "5. ingest goes on past T; the WAL segment is switched and archived; velferd stops"
wait_for 120 "events after T" has_events $((AT_T + 2))
kill "$VELFERD_PID"
wait "$VELFERD_PID" 2>/dev/null || true
VELFERD_PID=
AT_END=$(events_at "$PORT")
SEGMENT=$(psql_at "$PORT" "SELECT pg_walfile_name(pg_switch_wal())")
archived() { [ -f "$WORK/archive/$SEGMENT" ]; }
wait_for 30 "the archiving of WAL segment $SEGMENT" archived
say "   events on the primary at the end: $AT_END; WAL segments archived: $(ls "$WORK/archive" | wc -l)"

say "6. restore the base backup to T on a second cluster, port $RESTORED_PORT"
cp -a "$WORK/base" "$WORK/restored"
chmod 700 "$WORK/restored"
cat >>"$WORK/restored/postgresql.conf" <<EOF
port = $RESTORED_PORT
archive_mode = off
restore_command = 'cp $WORK/archive/%f %p'
recovery_target_time = '$T'
recovery_target_action = 'promote'
EOF
as_pg touch "$WORK/restored/recovery.signal"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w -t 120 start >/dev/null
promoted() { [ "$(psql_at "$RESTORED_PORT" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; }
wait_for 120 "the end of recovery" promoted
grep -E "recovery stopping|consistent recovery state|archive recovery complete" "$WORK/restored.log" | sed 's/^/   log: /'

say "7. check"
RESTORED=$(events_at "$RESTORED_PORT")
say "   events: base backup >= $AT_BACKUP, at T $AT_T, restored $RESTORED, primary at the end $AT_END"
[ "$RESTORED" = "$AT_T" ] || { say "FAILED: the restored cluster has $RESTORED events, not the $AT_T committed at T"; exit 1; }
[ "$RESTORED" -gt "$AT_BACKUP" ] || { say "FAILED: no event past the base backup was replayed"; exit 1; }
[ "$RESTORED" -lt "$AT_END" ] || { say "FAILED: recovery did not stop at T"; exit 1; }
RESTORED_URL="postgres://postgres@127.0.0.1:$RESTORED_PORT/velferd"
VELFERD_DATABASE_URL=$RESTORED_URL VELFERD_BIND=127.0.0.1:$HTTP_PORT VELFERD_LOG=warn \
    "$VELFERD" serve >>"$WORK/velferd.log" 2>&1 &
VELFERD_PID=$!
ready() { curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null; }
wait_for 60 "velferd on the restored cluster" ready
VERIFY=$(VELFERD_DATABASE_URL=$RESTORED_URL "$VELFERD" audit verify | tail -1)
say "   velferd on the restored cluster: /readyz 200; audit verify: $VERIFY"
say "OK: point-in-time recovery restored exactly the $AT_T events committed at T"
