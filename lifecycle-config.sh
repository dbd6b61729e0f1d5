#!/bin/bash
# Lifecycle script of a SageMaker notebook instance for the caption workbench (persistent-conda pattern).
# Use this one file as both the on-create and the on-start script (`make lifecycle-b64` prints its base64).
#
# On create: install Miniforge and build the conda environment from the project's environment.yml under
#   /home/ec2-user/SageMaker (the volume that survives stops), in the background with nohup, so the hook
#   returns well inside SageMaker's 5-minute limit. Log: SageMaker/.caption-workbench/build-env.log;
#   the file env-ready appears next to it when the environment is complete (about 10 minutes).
# On start: register the Jupyter kernel "caption-workbench" (the one the notebooks and papermill use) and
#   restart Jupyter without blocking. Until the environment exists, the background build does this itself.
# Options below: stop the instance after N idle minutes; run the whole series with --preset full in the
#   background after start and copy the run folder to S3 (once: delete series-done to run it again).
#
# SageMaker runs it as root without arguments; everything under /home/ec2-user/SageMaker runs as ec2-user.
# Without an argument it does what the instance needs (build the environment if it is missing and no build
# is running, otherwise the on-start work); `on-create` and `on-start` force one hook.

set -euo pipefail

NB_USER=ec2-user
NB_HOME="${CW_NB_HOME:-/home/ec2-user}" # CW_* variables only let the tests run this in a sandbox
CRON_DIR="${CW_CRON_DIR:-/etc/cron.d}"
SM_DIR="$NB_HOME/SageMaker" # the persistent volume

# ---- settings: edit before creating the lifecycle configuration ----
PROJECT_DIR="$SM_DIR/caption-workbench" # the checkout (environment.yml, helpers/, notebooks/)
GIT_URL=""        # cloned into PROJECT_DIR when it is missing; empty: the instance's git repository
IDLE_MINUTES=0    # stop the instance after this many idle minutes; 0: never
RUN_FULL_SERIES=0 # 1: run all notebooks with --preset full in the background after start
S3_RUN_URI=""     # where the full run is copied; empty: s3://<SageMaker default bucket>/caption-workbench/runs/full

# ---- layout ----
KERNEL=caption-workbench
STATE="$SM_DIR/.caption-workbench" # logs, markers, pid files and a copy of this script
CONDA_DIR="$SM_DIR/miniforge3"
ENV_DIR="$SM_DIR/envs/$KERNEL"
RUN_DIR="$PROJECT_DIR/runs/full"
SELF="$STATE/lifecycle-config.sh"
READY="$STATE/env-ready"
BUILD_PID="$STATE/build-env.pid"
SERIES_PID="$STATE/series.pid"
SERIES_DONE="$STATE/series-done"
MINIFORGE_URL="https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-$(uname -m).sh"

log() { printf '%s caption-workbench: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

as_user() { sudo -u "$NB_USER" -H -- "$@"; }

running() { # running PIDFILE: the process named in PIDFILE is alive (an unreaped zombie is not)
    [[ -f "$1" ]] || return 1
    local status
    status="/proc/$(cat "$1")/status"
    [[ -r "$status" ]] && ! grep -q '^State:[[:space:]]*Z' "$status"
}

background() { # background NAME MODE: run this script's MODE detached, logging to STATE/NAME.log
    nohup bash "$SELF" "$2" >>"$STATE/$1.log" 2>&1 </dev/null &
    echo $! >"$STATE/$1.pid"
    log "started $2 in the background (pid $!, log $STATE/$1.log)"
}

install_self() { # keep a copy on the persistent volume for the background jobs and cron
    as_user mkdir -p "$STATE"
    if [[ "$(readlink -f "$0")" != "$(readlink -f "$SELF")" ]]; then
        install -m 0755 "$0" "$SELF"
    fi
}

tensorflow_pin() { # the tensorflow version pinned in environment.yml
    sed -n 's/^ *- *tensorflow==\([0-9.]*\).*/\1/p' "$PROJECT_DIR/environment.yml" | head -n 1
}

# ---- ec2-user: Miniforge, the conda environment, the project (run through as_user) ----
build_env_as_user() {
    if [[ ! -f "$PROJECT_DIR/environment.yml" ]]; then
        if [[ -z "$GIT_URL" ]]; then
            log "ERROR: $PROJECT_DIR/environment.yml not found; clone the project there or set GIT_URL"
            return 1
        fi
        git clone "$GIT_URL" "$PROJECT_DIR"
    fi
    if [[ ! -x "$CONDA_DIR/bin/conda" ]]; then
        log "installing Miniforge into $CONDA_DIR"
        curl -fsSL --retry 3 -o "$STATE/miniforge.sh" "$MINIFORGE_URL"
        bash "$STATE/miniforge.sh" -b -u -p "$CONDA_DIR"
        rm -f "$STATE/miniforge.sh"
    fi
    if [[ -x "$ENV_DIR/bin/python" ]]; then
        log "updating $ENV_DIR from $PROJECT_DIR/environment.yml"
        "$CONDA_DIR/bin/conda" env update --prefix "$ENV_DIR" --file "$PROJECT_DIR/environment.yml" --prune
    else
        log "creating $ENV_DIR from $PROJECT_DIR/environment.yml"
        "$CONDA_DIR/bin/conda" env create --prefix "$ENV_DIR" --file "$PROJECT_DIR/environment.yml"
    fi
    # the pins come from environment.yml: install the project itself without re-resolving them
    "$ENV_DIR/bin/python" -m pip install --no-deps -e "$PROJECT_DIR"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        log "GPU found: adding TensorFlow's CUDA libraries"
        "$ENV_DIR/bin/python" -m pip install "tensorflow[and-cuda]==$(tensorflow_pin)"
    fi
}

register_kernel_as_user() {
    # PATH in the kernel: the environment's java (METEOR) and tools come first
    "$ENV_DIR/bin/python" -m ipykernel install --user --name "$KERNEL" \
        --display-name "Python 3.11 ($KERNEL)" --env PATH "$ENV_DIR/bin:/usr/local/bin:/usr/bin:/bin"
}

series_as_user() {
    export PATH="$ENV_DIR/bin:$PATH" # the kernels papermill starts find the environment's java
    cd "$PROJECT_DIR"
    "$ENV_DIR/bin/python" -m helpers run --preset full --run-dir "$RUN_DIR"
    if [[ -n "$S3_RUN_URI" ]]; then
        "$ENV_DIR/bin/python" -m helpers.aws push --run-dir "$RUN_DIR" --s3 "$S3_RUN_URI"
    else
        "$ENV_DIR/bin/python" -m helpers.aws push --run-dir "$RUN_DIR"
    fi
}

# ---- root ----
restart_jupyter() {
    log "restarting Jupyter (not waiting for it)"
    if command -v systemctl >/dev/null; then
        systemctl --no-block restart jupyter-server.service
    else
        initctl restart jupyter-server --no-wait
    fi
}

start_series() {
    if [[ "$RUN_FULL_SERIES" != 1 ]]; then return 0; fi
    if [[ -f "$SERIES_DONE" ]]; then
        log "full series already ran (delete $SERIES_DONE to run it again)"
    elif running "$SERIES_PID"; then
        log "full series already running"
    else
        background series series
    fi
}

setup_autostop() {
    local cron="$CRON_DIR/caption-workbench-autostop"
    if [[ "$IDLE_MINUTES" -le 0 ]]; then
        rm -f "$cron"
        return 0
    fi
    log "stopping the instance after $IDLE_MINUTES idle minutes (checked every 5 minutes)"
    local py="$ENV_DIR/bin/python" busy="--busy-pidfile $SERIES_PID --busy-pidfile $BUILD_PID"
    echo "*/5 * * * * root [ -x $py ] && $py -m helpers.aws.autostop --idle-minutes $IDLE_MINUTES $busy \
>>$STATE/autostop.log 2>&1" >"$cron"
    chmod 0644 "$cron"
}

on_create() {
    install_self
    if running "$BUILD_PID"; then
        log "environment build already running"
        return 0
    fi
    rm -f "$READY"
    background build-env build
}

on_start() {
    install_self
    setup_autostop
    if [[ -f "$READY" ]]; then
        as_user bash "$SELF" register-kernel
        restart_jupyter
        start_series
    elif running "$BUILD_PID"; then
        log "environment still building: it registers the kernel when done ($STATE/build-env.log)"
    else
        log "no environment yet: building it"
        on_create
    fi
}

build() { # background, root: build as ec2-user, then what on-start would have done
    log "building the environment as $NB_USER"
    if ! as_user bash "$SELF" build-env; then
        log "ERROR: the environment build failed (see above); the next start tries again"
        return 1
    fi
    as_user touch "$READY"
    log "environment ready: $ENV_DIR"
    as_user bash "$SELF" register-kernel
    restart_jupyter
    start_series
}

series() { # background, root
    log "running the full series into $RUN_DIR"
    as_user bash "$SELF" series-user
    touch "$SERIES_DONE"
    log "full series done and copied to S3"
}

case "${1:-auto}" in
auto) on_start ;;
on-create) on_create ;;
on-start) on_start ;;
build) build ;;
series) series ;;
build-env) build_env_as_user ;;
register-kernel) register_kernel_as_user ;;
series-user) series_as_user ;;
*)
    echo "usage: $0 [on-create|on-start]" >&2
    exit 2
    ;;
esac
