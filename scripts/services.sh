#!/usr/bin/env bash
# Make sure MariaDB (127.0.0.1:3306), PostgreSQL (127.0.0.1:5432) and Redis
# (127.0.0.1:6379) answer;
# start whichever is down when its binary is installed, else name what is missing.
set -uo pipefail

answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # name port
  for _ in $(seq 1 60); do
    answers 127.0.0.1 "$2" && return 0
    sleep 0.5
  done
  echo "$1 did not start on 127.0.0.1:$2" >&2
  return 1
}

missing=()
if ! answers 127.0.0.1 3306; then
  if command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; then
    echo "==> starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd \
      || (/usr/sbin/mariadbd --user=root >/tmp/atx-mariadb.log 2>&1 &)
    wait_for MariaDB 3306 || missing+=("MariaDB (127.0.0.1:3306)")
  else
    missing+=("MariaDB (127.0.0.1:3306; no mariadbd installed)")
  fi
fi
if ! answers 127.0.0.1 6379; then
  if command -v redis-server >/dev/null; then
    echo "==> starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --logfile /tmp/atx-redis.log
    wait_for Redis 6379 || missing+=("Redis (127.0.0.1:6379)")
  else
    missing+=("Redis (127.0.0.1:6379; no redis-server installed)")
  fi
fi
if ! answers 127.0.0.1 5432; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "==> starting PostgreSQL"
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    pg_ctlcluster "$version" main start || true
    wait_for PostgreSQL 5432 || missing+=("PostgreSQL (127.0.0.1:5432)")
  else
    missing+=("PostgreSQL (127.0.0.1:5432; no pg_ctlcluster installed)")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "required services are not running: ${missing[*]}" >&2
  exit 1
fi
echo "==> MariaDB, PostgreSQL and Redis answer"
