#!/usr/bin/env bash
# One run of the intake benchmarks, in one go, against a release build of Larder started
# here on a fresh database:
#   1. a fresh burst: every delivery of a realistic corpus (apps × customers living their
#      storylines, 10 % form-encoded, lifecycle events before purchases too), once, over
#      64 connections;
#   2. a duplicate burst: the same corpus again, every delivery an exact repeat;
#   3. fresh deliveries to other apps at half the rate the fresh burst reached;
#   4. the correctness check through the admin API (verify.py), for all of it;
#   5. the ceiling: PostgreSQL alone running the minimal one-transaction-per-delivery
#      intake (ceiling/run.sh, pgbench), with Larder stopped;
# and prints the ratios (report.py). Each step's numbers are kept in the output directory.
#
#   load-tests/run.sh [--store postgres|sqlite] [--apps 200] [--customers 25]
#                     [--connections 64] [--ceiling-seconds 30] [--out DIR]
#                     [--welcome-emails on|off]
#
# New members get their welcome email (the outbox sends them during the run, as it would
# after a launch) unless --welcome-emails off, which measures intake alone.
#
# Needs PostgreSQL (LOAD_POSTGRES, default postgres://postgres@127.0.0.1:5432; also for the
# ceiling on the SQLite store), Redis (LOAD_REDIS, default redis://127.0.0.1:6379) for the
# PostgreSQL store, pgbench, psql and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

store=postgres apps=200 customers=25 connections=64 ceiling_seconds=30 out="" welcome=on
while [ $# -gt 0 ]; do
  case "$1" in
    --store) store=$2; shift 2 ;;
    --apps) apps=$2; shift 2 ;;
    --customers) customers=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --ceiling-seconds) ceiling_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --welcome-emails) welcome=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$store" in postgres | sqlite) ;; *) echo "run.sh: --store postgres or sqlite" >&2; exit 2 ;; esac
case "$welcome" in on | off) ;; *) echo "run.sh: --welcome-emails on or off" >&2; exit 2 ;; esac

pg=${LOAD_POSTGRES:-postgres://postgres@127.0.0.1:5432}
redis=${LOAD_REDIS:-redis://127.0.0.1:6379}
port=${LOAD_PORT:-18700}
base="http://127.0.0.1:$port"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/larder-target}"
work=$(mktemp -d)
# Welcome emails go to .eml files (no SMTP server here); on tmpfs when there is one, so
# the run measures Larder and PostgreSQL, not the file system creating thousands of files.
mail=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
out=${out:-$work/results}
mkdir -p "$out"
echo "$welcome" >"$out/welcome-emails.txt"

echo "run: building the release binaries"
cargo build --release -q -p larder-server --bins
bin="$CARGO_TARGET_DIR/release"

operator="lop_load_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
db="larder_load_$(date +%s)_$$"
larder_pid=""
cleanup() {
  [ -n "$larder_pid" ] && kill "$larder_pid" 2>/dev/null && wait "$larder_pid" 2>/dev/null
  if [ "$store" = postgres ]; then
    psql "$pg/postgres" -qtAc "drop database if exists $db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work/data" "$mail"
}
trap cleanup EXIT

env_vars=(
  "LARDER_LISTEN=127.0.0.1:$port"
  "LARDER_OPERATOR_TOKEN=$operator"
  "LARDER_LOG_FORMAT=json"
  "RUST_LOG=warn"
  "LARDER_OUTBOX_DIR=$mail"
)
if [ "$store" = postgres ]; then
  psql "$pg/postgres" -qtAc "create database $db" >/dev/null
  env_vars+=("DATABASE_URL=$pg/$db" "REDIS_URL=$redis" "LARDER_REDIS_PREFIX=$db:")
fi
env -C "$work" "${env_vars[@]}" "$bin/larder" serve >"$out/larder.log" 2>&1 &
larder_pid=$!
for _ in $(seq 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "$base/healthz" >/dev/null || { echo "run: larder did not start" >&2; exit 1; }
echo "run: larder serving on $store (pid $larder_pid)"

cd "$root/load-tests"
python3 setup.py --base "$base" --operator "$operator" --apps "$apps" --out "$work/apps.json" \
  --welcome-emails "$welcome"
python3 setup.py --base "$base" --operator "$operator" --apps 50 --out "$work/apps-half.json" \
  --welcome-emails "$welcome"
python3 corpus.py --apps "$work/apps.json" --customers "$customers" \
  --out "$work/corpus.jsonl" --expected "$work/expected.json"
python3 corpus.py --apps "$work/apps-half.json" --customers "$customers" --tag 1 \
  --out "$work/corpus-half.jsonl" --expected "$work/expected-half.json"
curl -sf -H "authorization: Bearer $operator" "$base/metrics" >"$out/metrics-before.txt"

echo "run: fresh burst"
"$bin/larder-loadgen" --base "$base" --corpus "$work/corpus.jsonl" \
  --connections "$connections" --pid "$larder_pid" --out "$out/fresh.json"
curl -sf -H "authorization: Bearer $operator" "$base/metrics" >"$out/metrics-fresh.txt"
echo "run: duplicate burst"
"$bin/larder-loadgen" --base "$base" --corpus "$work/corpus.jsonl" \
  --connections "$connections" --pid "$larder_pid" --out "$out/duplicates.json"
rate=$(python3 -c "import json; print(json.load(open('$out/fresh.json'))['per_second'] / 2)")
echo "run: fresh deliveries at half that rate ($rate/s)"
"$bin/larder-loadgen" --base "$base" --corpus "$work/corpus-half.jsonl" \
  --connections "$connections" --rate "$rate" --pid "$larder_pid" --out "$out/half.json"
curl -sf -H "authorization: Bearer $operator" "$base/metrics" >"$out/metrics-after.txt"
grep VmRSS "/proc/$larder_pid/status" | awk '{print $2}' >"$out/rss-kib.txt"

echo "run: checking every delivery"
python3 verify.py --base "$base" --apps "$work/apps.json" --expected "$work/expected.json" --sent 2
python3 verify.py --base "$base" --apps "$work/apps-half.json" --expected "$work/expected-half.json"

kill "$larder_pid" && wait "$larder_pid" 2>/dev/null || true
larder_pid=""
echo "run: the ceiling (PostgreSQL alone, pgbench, ${ceiling_seconds}s a client count)"
./ceiling/run.sh "$pg" "$ceiling_seconds" 8 "$connections" | tee "$out/ceiling.txt"

python3 report.py --store "$store" --dir "$out"
echo "run: results in $out"
