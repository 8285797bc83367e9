# shellcheck shell=bash
# Helpers shared by scripts/*. Source it (`. "$(dirname "$0")/_common.sh"`); it is not a command.
#
# Everything here is idempotent: each helper checks first and only installs what is missing, so a
# second run of scripts/demo or scripts/test spends its time on the app, not on installs.

MADOGUCHI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MADOGUCHI_ROOT

# What the app needs at run time: Japanese fonts (IPAex and the MJ glyphs for 外字), Redis, the
# PC/SC daemon with the virtual reader driver, CUPS (office printing; the demo's simulated
# office printer is a CUPS queue), WeasyPrint's libraries, and a Python for uv. pyscard is built
# from source, so its compiler, headers and swig come too.
# shellcheck disable=SC2034  # used by the scripts that source this file
DEMO_APT_PACKAGES=(
  fonts-ipaexfont fonts-ipamj-mincho redis-server pcscd vsmartcard-vpcd cups cups-bsd
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 python3 python3-venv
  gcc python3-dev swig libpcsclite-dev
)
# What the test suite needs on top: a PostgreSQL server, the browser, PDF and QR tools.
# shellcheck disable=SC2034
TEST_APT_PACKAGES=(postgresql chromium poppler-utils zbar-tools)

# uv: install from the lock file only, never re-lock behind the developer's back, and never fetch
# a Python build from the internet (Debian 12's python3 is 3.11, which is what the project needs).
export UV_FROZEN="${UV_FROZEN:-1}"
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"
# Tools installed with `pip --user` or by ensure_uv land here.
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) PATH="$HOME/.local/bin:$PATH" ;;
esac
export PATH

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  _BOLD=$'\033[1m' _RED=$'\033[31m' _YELLOW=$'\033[33m' _GREEN=$'\033[32m' _RESET=$'\033[0m'
else
  _BOLD='' _RED='' _YELLOW='' _GREEN='' _RESET=''
fi

say() { printf '%s==> %s%s\n' "$_BOLD" "$*" "$_RESET"; }
note() { printf '    %s\n' "$*"; }
ok() { printf '%s    %s%s\n' "$_GREEN" "$*" "$_RESET"; }
warn() { printf '%swarning: %s%s\n' "$_YELLOW" "$*" "$_RESET" >&2; }
fail() { printf '%sFAILED: %s%s\n' "$_RED" "$*" "$_RESET" >&2; }
die() {
  fail "$*"
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# "1m05s" for a number of seconds.
human_seconds() {
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# Runs a named step; on failure says which step and with what exit code, and returns that code.
run_step() {
  local name=$1 started=$SECONDS rc=0
  shift
  say "$name"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    ok "$name: ok ($(human_seconds $((SECONDS - started))))"
  else
    fail "$name (exit $rc)"
  fi
  return "$rc"
}

# --- Debian packages ------------------------------------------------------------------------------

deb_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# Installs the Debian packages among the arguments that are not installed yet, in one apt-get
# call, with one `apt-get update` first and only when something is missing. As a non-root user
# it lists what is missing and carries on. MADOGUCHI_SKIP_APT=1 skips the check altogether.
ensure_apt() {
  if [ -n "${MADOGUCHI_SKIP_APT:-}" ]; then
    return 0
  fi
  if ! have dpkg-query; then
    warn "not a Debian-like system; make sure these (or their equivalents) are installed: $*"
    return 0
  fi
  local pkg missing=()
  for pkg in "$@"; do
    deb_installed "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  if ! is_root; then
    warn "missing Debian packages: ${missing[*]}"
    warn "install them with: sudo apt-get install ${missing[*]}  (continuing without them)"
    return 0
  fi
  say "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_MADOGUCHI_APT_UPDATED:-}" ]; then
    apt-get update -q
    _MADOGUCHI_APT_UPDATED=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# Debian packages for Node.js, but only when the commands are missing: a machine may have Node.js
# from elsewhere (nodesource, nvm), and Debian's npm package would fight with it.
node_apt_packages() {
  have node || printf '%s\n' nodejs
  have npm || printf '%s\n' npm
}

# --- Python: uv and the virtual environment ------------------------------------------------------

# uv from PyPI (never a curl | sh installer): into its own venv under ~/.local/share, linked
# from ~/.local/bin; `pip install --user` where the system Python allows it is the fallback.
ensure_uv() {
  if have uv; then
    return 0
  fi
  local venv="$HOME/.local/share/madoguchi/uv-venv"
  mkdir -p "$HOME/.local/bin"
  if [ ! -x "$venv/bin/uv" ]; then
    have python3 || die "python3 is missing; install it (apt-get install python3 python3-venv) and run again"
    say "Installing uv from PyPI into $venv"
    if python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q --disable-pip-version-check uv; then
      :
    else
      warn "could not make a venv for uv; trying pip install --user"
      rm -rf "$venv"
      python3 -m pip install -q --user uv || die "could not install uv from PyPI"
    fi
  fi
  if [ -x "$venv/bin/uv" ]; then
    ln -sf "$venv/bin/uv" "$HOME/.local/bin/uv"
  fi
  hash -r
  have uv || die "uv was installed but is not on PATH (looked in $HOME/.local/bin)"
}

uv_sync() {
  (cd "$MADOGUCHI_ROOT" && uv sync --frozen)
}

# --- Browser assets from npm ---------------------------------------------------------------------

# `npm ci` when node_modules is missing or older than the lock file (or package.json).
ensure_npm_deps() {
  local stamp="$MADOGUCHI_ROOT/node_modules/.package-lock.json"
  if [ -f "$stamp" ] && [ ! "$MADOGUCHI_ROOT/package-lock.json" -nt "$stamp" ] \
    && [ ! "$MADOGUCHI_ROOT/package.json" -nt "$stamp" ]; then
    return 0
  fi
  have npm || die "npm is missing; run ./scripts/setup as root, or install Node.js and npm"
  say "Installing browser packages (npm ci)"
  (cd "$MADOGUCHI_ROOT" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
  # npm ci may keep the lock file's mtime newer than its own record; touch so the next run skips.
  touch "$stamp"
}

# --- Throwaway services for the tests ------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Newest installed PostgreSQL server's bin directory (Debian keeps them out of PATH).
pg_bindir() {
  local dir
  if have pg_config && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return 0
  fi
  for dir in $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  if have initdb; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

# True when a PostgreSQL server on 127.0.0.1:<port> lets the user `postgres` in without a password
# and that user may create databases (the tests make their own temporary ones).
postgres_usable() {
  local port=$1 answer
  if have pg_isready; then
    pg_isready -q -h 127.0.0.1 -p "$port" -t 3 || return 1
  fi
  have psql || return 1
  answer="$(PGCONNECT_TIMEOUT=5 PGPASSWORD='' psql -X -w -At -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'select rolsuper or rolcreatedb from pg_roles where rolname = current_user' 2>/dev/null)" || return 1
  [ "$answer" = t ]
}

redis_ping() {
  local port=$1
  if have redis-cli; then
    [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]
    return
  fi
  # shellcheck disable=SC2016  # $1 expands in the inner shell
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && IFS= read -r line <&3 && [[ $line == +PONG* ]]' _ "$port" 2>/dev/null
}

_PRIVATE_PG_DIR=''
_PRIVATE_PG_BINDIR=''
_PRIVATE_PG_AS=()

# initdb + pg_ctl start into a temporary folder on a free port, trust auth, durability off (it
# is thrown away). initdb refuses root, so as root the cluster belongs to the `postgres` user.
start_private_postgres() {
  local bindir port base
  bindir="$(pg_bindir)" || die "no PostgreSQL server found (apt-get install postgresql)"
  port="$(free_port)"
  base="${TMPDIR:-/tmp}"
  if is_root; then
    base=/tmp # the postgres user must be able to reach it
    id postgres >/dev/null 2>&1 || die "initdb refuses to run as root and there is no 'postgres' user"
    _PRIVATE_PG_AS=(runuser -u postgres --)
  fi
  _PRIVATE_PG_DIR="$(mktemp -d "$base/madoguchi-pg.XXXXXX")"
  _PRIVATE_PG_BINDIR="$bindir"
  if is_root; then
    chown postgres: "$_PRIVATE_PG_DIR"
  fi
  say "Starting a private PostgreSQL on 127.0.0.1:$port ($_PRIVATE_PG_DIR)"
  if ! (cd / && "${_PRIVATE_PG_AS[@]}" "$bindir/initdb" -D "$_PRIVATE_PG_DIR/data" -U postgres -A trust \
    -E UTF8 --locale=C --no-sync >"$_PRIVATE_PG_DIR/initdb.log" 2>&1); then
    cat "$_PRIVATE_PG_DIR/initdb.log" >&2
    die "initdb failed"
  fi
  if ! (cd / && "${_PRIVATE_PG_AS[@]}" "$bindir/pg_ctl" -D "$_PRIVATE_PG_DIR/data" -l "$_PRIVATE_PG_DIR/postgres.log" \
    -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -k $_PRIVATE_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null); then
    tail -n 30 "$_PRIVATE_PG_DIR/postgres.log" >&2 || true
    die "the private PostgreSQL did not start"
  fi
  export MADOGUCHI_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

stop_private_postgres() {
  if [ -n "$_PRIVATE_PG_DIR" ] && [ -d "$_PRIVATE_PG_DIR" ]; then
    (cd / && "${_PRIVATE_PG_AS[@]}" "$_PRIVATE_PG_BINDIR/pg_ctl" -D "$_PRIVATE_PG_DIR/data" -m immediate -w stop \
      >/dev/null 2>&1) || true
    rm -rf "$_PRIVATE_PG_DIR"
    _PRIVATE_PG_DIR=''
  fi
}

_PRIVATE_REDIS_PID=''
_PRIVATE_REDIS_DIR=''

start_private_redis() {
  local port i
  have redis-server || die "redis-server is missing (apt-get install redis-server)"
  port="$(free_port)"
  _PRIVATE_REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/madoguchi-redis.XXXXXX")"
  say "Starting a private Redis on 127.0.0.1:$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$_PRIVATE_REDIS_DIR" --logfile "$_PRIVATE_REDIS_DIR/redis.log" </dev/null &
  _PRIVATE_REDIS_PID=$!
  for i in $(seq 1 100); do
    if redis_ping "$port"; then
      export MADOGUCHI_TEST_REDIS_URL="redis://127.0.0.1:$port/15"
      return 0
    fi
    kill -0 "$_PRIVATE_REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$_PRIVATE_REDIS_DIR/redis.log" >&2 || true
  die "the private Redis did not start (waited ${i} tries)"
}

stop_private_redis() {
  if [ -n "$_PRIVATE_REDIS_PID" ]; then
    kill "$_PRIVATE_REDIS_PID" 2>/dev/null || true
    wait "$_PRIVATE_REDIS_PID" 2>/dev/null || true
    _PRIVATE_REDIS_PID=''
  fi
  if [ -n "$_PRIVATE_REDIS_DIR" ]; then
    rm -rf "$_PRIVATE_REDIS_DIR"
    _PRIVATE_REDIS_DIR=''
  fi
}
