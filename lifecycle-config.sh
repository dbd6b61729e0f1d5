#!/bin/bash
# Lifecycle script of a SageMaker notebook instance for the caption workbench (persistent-conda pattern).
# Use this one file as both the on-create and the on-start script (`make lifecycle-b64` prints its base64).
#
# On create: check glibc and free space, then build the conda environment from environment.yml under
#   /home/ec2-user/SageMaker (the volume that survives stops) in the background, so the hook returns at once.
#   On a GPU it adds the CUDA libraries and a torch build the driver runs, then probes both frameworks.
#   Log: SageMaker/.caption-workbench/build-env.log; env-ready appears next to it when the environment
#   works, env-failed (with the reason) when it does not.
# On start: register the kernel "caption-workbench", make Jupyter serve the kernel's widget front-end and
#   restart Jupyter without blocking. Until the environment exists, the background build does this itself.
# SageMaker runs it as root without arguments; everything under SageMaker/ runs as ec2-user.

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
MIN_GLIBC=2.28    # the pinned wheels (numpy, torch) are manylinux_2_27/2_28: Amazon Linux 2 (2.26) cannot run them
MIN_FREE_GB=27    # a new environment (GPU: ~16 GB with Miniforge), caches (~1.2 GB), a full run (~9.5 GB)
CUDA13_MIN_DRIVER=580 # torch from PyPI is a CUDA 13 build; older drivers get torch's CUDA 12.6 build (driver >= 525.60)
TORCH_CUDA12=cu126
TORCH_CUDA12_INDEX="https://download.pytorch.org/whl/$TORCH_CUDA12"

# ---- layout ----
KERNEL=caption-workbench
STATE="$SM_DIR/.caption-workbench" # logs, markers, pid files and a copy of this script
CONDA_DIR="$SM_DIR/miniforge3"
ENV_DIR="$SM_DIR/envs/$KERNEL"
RUN_DIR="$PROJECT_DIR/runs/full"
SELF="$STATE/lifecycle-config.sh"
READY="$STATE/env-ready"
FAILED="$STATE/env-failed"
KERAS_CACHE="$STATE/cache/keras" # KERAS_HOME and HF_HOME on the volume: a restart downloads nothing again
HF_CACHE="$STATE/cache/huggingface"
JUPYTER_PY="$NB_HOME/anaconda3/envs/JupyterSystemEnv/bin/python" # the environment Jupyter itself runs from
BUILD_PID="$STATE/build-env.pid"
SERIES_PID="$STATE/series.pid"
SERIES_DONE="$STATE/series-done"
MINIFORGE_URL="https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-$(uname -m).sh"

log() { printf '%s caption-workbench: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

as_user() { sudo -u "$NB_USER" -H -- "$@"; }

fail() { # one clear line in the log and the reason in env-failed; stops this step
    log "ERROR: $*"
    echo "$*" >"$FAILED"
    exit 1
}

running() { # running PIDFILE MODE: PIDFILE names a live "bash $SELF MODE" (a pid reused after a reboot is not)
    local pid cmd
    pid=$(cat "$1" 2>/dev/null) || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ "$cmd" == *"$SELF $2"* ]]
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

pin() { # pin NAME: the version of NAME pinned in environment.yml
    sed -n "s/^ *- *$1==\([0-9.]*\).*/\1/p" "$PROJECT_DIR/environment.yml" | head -n 1
}

# ---- ec2-user: Miniforge, the conda environment, the project (run through as_user) ----
preflight_as_user() { # before building: a glibc the wheels run on, and room on the volume
    local glibc free_gb
    glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
    if ! printf '%s\n' "$MIN_GLIBC" "$glibc" | sort -V -C; then
        fail "glibc $glibc is older than $MIN_GLIBC (the pinned wheels need it): use --platform-identifier notebook-al2023-v1"
    fi
    [[ -x "$ENV_DIR/bin/python" ]] && return 0 # an update needs no new room
    free_gb=$(($(df -Pk "$SM_DIR" | awk 'NR == 2 {print $4}') / 1024 / 1024))
    if ((free_gb < MIN_FREE_GB)); then
        fail "$free_gb GB free on $SM_DIR, $MIN_FREE_GB GB needed: create the instance with a larger --volume-size-in-gb"
    fi
}

build_env_as_user() {
    if [[ ! -f "$PROJECT_DIR/environment.yml" ]]; then
        [[ -n "$GIT_URL" ]] || fail "$PROJECT_DIR/environment.yml not found; clone the project there or set GIT_URL"
        git clone "$GIT_URL" "$PROJECT_DIR"
    fi
    preflight_as_user
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
    gpu_stack_as_user
}

gpu_stack_as_user() { # TensorFlow's CUDA 12 libraries, a torch build the driver runs, then both must work
    local driver pkgs idx=()
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1) || true
    if [[ -z "$driver" ]]; then
        log "no NVIDIA GPU: CPU environment"
        return 0
    fi
    pkgs=("tensorflow[and-cuda]==$(pin tensorflow)")
    if ((${driver%%.*} < CUDA13_MIN_DRIVER)); then
        pkgs+=("torch==$(pin torch)+$TORCH_CUDA12")
        idx=(--extra-index-url "$TORCH_CUDA12_INDEX")
    fi
    log "NVIDIA driver $driver: installing ${pkgs[*]}"
    "$ENV_DIR/bin/python" -m pip install "${idx[@]}" "${pkgs[@]}"
    "$ENV_DIR/bin/python" -m helpers.gpu_probe || fail "GPU probe failed with NVIDIA driver $driver (see above)"
}

register_kernel_as_user() {
    # PATH in the kernel: the environment's java (METEOR) and tools come first
    "$ENV_DIR/bin/python" -m ipykernel install --user --name "$KERNEL" \
        --display-name "Python 3.11 ($KERNEL)" --env PATH "$ENV_DIR/bin:/usr/local/bin:/usr/bin:/bin" \
        --env KERAS_HOME "$KERAS_CACHE" --env HF_HOME "$HF_CACHE"
    widgets_frontend_as_user
}

widgets_frontend_as_user() { # Jupyter serves the widget front-end that the kernel's ipywidgets pairs with
    local pins=() d
    for d in "$ENV_DIR"/lib/python3*/site-packages/{jupyterlab_widgets,widgetsnbextension}-*.dist-info; do
        d=$(basename "$d" .dist-info)
        [[ "$d" == *-\** ]] || pins+=("${d%-*}==${d##*-}")
    done
    if [[ ! -x "$JUPYTER_PY" || ${#pins[@]} -eq 0 ]]; then
        log "widget front-end left as it is (no JupyterSystemEnv, or no ipywidgets in $ENV_DIR)"
        return 0
    fi
    log "widget front-end for the kernel: ${pins[*]} into JupyterSystemEnv"
    "$JUPYTER_PY" -m pip install -q --no-deps "${pins[@]}" || log "WARNING: widgets may not display"
}

series_as_user() {
    export PATH="$ENV_DIR/bin:$PATH" KERAS_HOME="$KERAS_CACHE" HF_HOME="$HF_CACHE" # java for METEOR; caches
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
    elif running "$SERIES_PID" series; then
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
    if running "$BUILD_PID" build; then
        log "environment build already running"
        return 0
    fi
    rm -f "$READY" "$FAILED"
    background build-env build
}

on_start() {
    install_self
    setup_autostop
    if [[ -f "$READY" ]]; then
        as_user bash "$SELF" register-kernel
        restart_jupyter
        start_series
    elif running "$BUILD_PID" build; then
        log "environment still building: it registers the kernel when done ($STATE/build-env.log)"
    else
        log "no environment yet: building it"
        on_create
    fi
}

build() { # background, root: build as ec2-user, then what on-start would have done
    log "building the environment as $NB_USER"
    if ! as_user bash "$SELF" build-env; then
        [[ -f "$FAILED" ]] || echo "the environment build failed: see $STATE/build-env.log" >"$FAILED"
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
