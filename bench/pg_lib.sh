# Sourced by the PostgreSQL benchmarks: a private PostgreSQL (Debian's initdb/pg_ctl, the
# newest installed) on a free port in a temporary directory, default durability, stopped and
# removed on exit. Sets $tmp (the directory, also for the caller's files) and $url.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
tmp=$(mktemp -d); chmod 755 "$tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$tmp/pg"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$tmp/pg"
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U streamprep --auth=trust -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -o "-p $port -k $tmp/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
trap 'as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1; rm -rf "$tmp"' EXIT
url="postgres://streamprep@127.0.0.1:$port/postgres"
