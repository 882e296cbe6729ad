#!/usr/bin/env bash
# Starts whichever of the real services the tests and `make run` need is not answering (commands from DESIGN.md).
# The read-replica tests start their own primary and replica from the same mariadb-server package (mariadbd,
# mariadb-install-db: tests/replication.py), on free ports; nothing else to start for them.
# Usage: scripts/ensure-services.sh [rabbitmq] [mariadb] [redis]   (no argument: all three)
set -u
wanted=("$@"); [ ${#wanted[@]} -eq 0 ] && wanted=(rabbitmq mariadb redis)

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # port name seconds
  for _ in $(seq 1 "$3"); do up "$1" && return 0; sleep 1; done
  echo "ERROR: $2 did not start on 127.0.0.1:$1" >&2; return 1
}
need() { command -v "$1" >/dev/null 2>&1 || { echo "ERROR: $1 is not installed; $2" >&2; return 1; }; }

status=0
for service in "${wanted[@]}"; do
  case "$service" in
  rabbitmq)
    if ! up 5672; then
      need rabbitmq-server "install it with: apt-get install rabbitmq-server" || { status=1; continue; }
      echo "starting RabbitMQ..."; rabbitmq-server -detached >/dev/null 2>&1
      wait_for 5672 RabbitMQ 60 || status=1
    fi
    if ! up 15672 && command -v rabbitmq-plugins >/dev/null 2>&1; then
      # nameko's test fixtures create a vhost per test through the management API
      rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1
      wait_for 15672 "RabbitMQ management API" 60 || status=1
    fi
    if command -v rabbitmq-plugins >/dev/null 2>&1; then
      # the Kafka bridge shards events by aggregate id over an x-consistent-hash exchange (idempotent if enabled)
      rabbitmq-plugins enable rabbitmq_consistent_hash_exchange >/dev/null 2>&1 || status=1
    fi ;;
  mariadb)
    if ! up 3306; then
      need mariadbd "install it with: apt-get install mariadb-server" 2>/dev/null || [ -x /usr/sbin/mariadbd ] || { status=1; continue; }
      echo "starting MariaDB..."; start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
      wait_for 3306 MariaDB 60 || status=1
    fi ;;
  redis)
    if ! up 6379; then
      need redis-server "install it with: apt-get install redis-server" || { status=1; continue; }
      echo "starting Redis..."; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
      wait_for 6379 Redis 30 || status=1
    fi ;;
  esac
done
exit $status
