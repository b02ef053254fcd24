"""Several machines: the rendezvous flags tools/dist_train.sh and tools/dist_test.sh hand torchrun from NNODES,
NODE_RANK, MASTER_ADDR and MASTER_PORT, their one-line refusals of bad values, and tools/slurm_train.sh without
SLURM (stand-ins for scontrol and srun on PATH, an interpreter stand-in that prints what it was handed).

The two-machine training itself: tests/tools/test_two_machines.py.
"""
import os
import stat
import subprocess
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
LAUNCH_VARS = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "SRUN_ARGS", "OPENTAD_SLURM_STEP")
SLURM_PREFIX = ("SLURM_", "SRUN_")

# stands in for srun: runs the command after the options once per machine (--nodes=N), at the same time,
# SLURM_NODEID 0..N-1, each task's stdout in $FAKE_SRUN_OUT/task{i}.out; records its own arguments
FAKE_SRUN = """\
#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_SRUN_OUT/srun_args.txt"
nodes=1
while [[ "${1-}" == -* ]]; do
    case "$1" in --nodes=*) nodes=${1#--nodes=};; esac
    shift
done
pids=()
for ((i = 0; i < nodes; i++)); do
    SLURM_NODEID=$i SLURM_PROCID=$i "$@" > "$FAKE_SRUN_OUT/task$i.out" 2> "$FAKE_SRUN_OUT/task$i.err" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


def write_executable(path, text):
    path.write_text(textwrap.dedent(text))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def fake_slurm_bin(folder, hosts):
    """A folder with ``scontrol`` (``show hostnames`` prints ``hosts``) and :data:`FAKE_SRUN`."""
    folder.mkdir(exist_ok=True)
    lines = "\\n".join(hosts)
    write_executable(folder / "scontrol", f"""\
        #!/usr/bin/env bash
        [ "$1 $2" = "show hostnames" ] || exit 1
        printf '{lines}\\n'
    """)
    write_executable(folder / "srun", FAKE_SRUN)
    return str(folder)


def clean_env(**overrides):
    """This environment without the launch and SLURM variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith(SLURM_PREFIX)}
    env.update(overrides)
    return env


@pytest.fixture
def argv_python(tmp_path):
    """An interpreter stand-in that prints its arguments, one a line, then NODE_RANK as ``node_rank=R``."""
    return write_executable(tmp_path / "argv_python", """\
        #!/usr/bin/env bash
        printf '%s\\n' "$@"
        echo "node_rank=${NODE_RANK-}"
    """)


def launch(script, *args, env):
    return subprocess.run(["bash", os.path.join(TOOLS, script), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def torchrun_flags(script, nproc, *rendezvous):
    tool = "train.py" if script == "dist_train.sh" else "test.py"
    return ["-m", "torch.distributed.run", *rendezvous, f"--nproc_per_node={nproc}", os.path.join(TOOLS, tool),
            "cfg.py", "--seed", "3"]


@pytest.mark.parametrize("script", ["dist_train.sh", "dist_test.sh"])
@pytest.mark.parametrize("variables, rendezvous", [
    ({}, ["--standalone", "--nnodes=1"]),
    # one machine stays standalone whatever MASTER_ADDR / MASTER_PORT the shell carries
    (dict(MASTER_ADDR="10.1.2.3", MASTER_PORT="1234", NODE_RANK="0"), ["--standalone", "--nnodes=1"]),
    (dict(NNODES="1"), ["--standalone", "--nnodes=1"]),
    (dict(NNODES="2", NODE_RANK="1", MASTER_ADDR="10.1.2.3"),
     ["--nnodes=2", "--node_rank=1", "--master_addr=10.1.2.3", "--master_port=29500"]),
    (dict(NNODES="04", NODE_RANK="03", MASTER_ADDR="node-a.cluster", MASTER_PORT="08080"),
     ["--nnodes=4", "--node_rank=3", "--master_addr=node-a.cluster", "--master_port=8080"]),
    (dict(NNODES="2", NODE_RANK="0", MASTER_ADDR="[fd00::1]", MASTER_PORT="65535"),
     ["--nnodes=2", "--node_rank=0", "--master_addr=[fd00::1]", "--master_port=65535"]),
])
def test_the_rendezvous_flags(argv_python, script, variables, rendezvous):
    out = launch(script, "cfg.py", "2", "--seed", "3", env=clean_env(PYTHON=argv_python, **variables))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:-1] == torchrun_flags(script, 2, *rendezvous)
    several = rendezvous[0] != "--standalone"
    note = f"{script}: one of several machines, torchrun's static rendezvous: {' '.join(rendezvous)}\n"
    assert out.stderr == (note if several else "")


A_HOST = dict(NNODES="2", NODE_RANK="1", MASTER_ADDR="10.1.2.3", MASTER_PORT="29501")


@pytest.mark.parametrize("script", ["dist_train.sh", "dist_test.sh"])
@pytest.mark.parametrize("variables, message", [
    (dict(A_HOST, NODE_RANK="2"), "NODE_RANK must be an integer from 0 to NNODES-1 = 1 (this machine's index, 0 on "
     "the machine at MASTER_ADDR), got '2' with NNODES=2"),
    (dict(A_HOST, NODE_RANK="-1"), "NODE_RANK must be an integer from 0 to NNODES-1 = 1"),
    (dict(A_HOST, NODE_RANK="one"), "NODE_RANK must be an integer from 0 to NNODES-1 = 1"),
    (dict(NODE_RANK="1"), "NODE_RANK=1 but NNODES is not set (one machine): set NNODES, the number of machines, "
     "on every machine"),
    (dict(A_HOST, MASTER_PORT="http"), "MASTER_PORT must be a port number from 1 to 65535 (a free TCP port on the "
     "machine at MASTER_ADDR), got 'http'"),
    (dict(A_HOST, MASTER_PORT="65536"), "MASTER_PORT must be a port number from 1 to 65535"),
    (dict(A_HOST, MASTER_PORT="0"), "MASTER_PORT must be a port number from 1 to 65535"),
    (dict(A_HOST, NNODES="two"), "NNODES must be a positive integer (the number of machines), got 'two'"),
    (dict(A_HOST, NNODES="0"), "NNODES must be a positive integer (the number of machines), got '0'"),
    (dict(A_HOST, NNODES="1:4"), "NNODES must be the number of machines, got '1:4' (elastic MIN:MAX ranges are not "
     "supported"),
    ({k: v for k, v in A_HOST.items() if k != "NODE_RANK"}, "NODE_RANK is not set: with NNODES=2 each machine needs "
     "its own, 0 to 1 (0 on the machine at MASTER_ADDR)"),
    ({k: v for k, v in A_HOST.items() if k != "MASTER_ADDR"}, "MASTER_ADDR is not set: with NNODES=2 every machine "
     "needs the address (IP or host name) of the NODE_RANK=0 machine"),
    (dict(A_HOST, MASTER_ADDR="node1:29500"), "MASTER_ADDR must be a host name or IP address without a port (the "
     "port goes in MASTER_PORT; an IPv6 address in brackets, e.g. [fd00::1]), got 'node1:29500'"),
    (dict(A_HOST, MASTER_ADDR="fd00::1"), "MASTER_ADDR must be a host name or IP address without a port"),
    (dict(A_HOST, MASTER_ADDR="node 1"), "MASTER_ADDR must be a host name or IP address without a port"),
])
def test_bad_values_are_one_line_before_torchrun_starts(argv_python, script, variables, message):
    out = launch(script, "cfg.py", "2", env=clean_env(PYTHON=argv_python, **variables))
    assert (out.returncode, out.stdout) == (2, "")  # the interpreter never started
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"{script}: error: {message}"), out.stderr


SLURM_JOB = dict(SLURM_JOB_ID="1234567", SLURM_JOB_NUM_NODES="2", SLURM_JOB_NODELIST="gpu[07-08]")


def test_slurm_dry_run_prints_srun_and_each_machines_command(tmp_path):
    env = clean_env(PATH=f"{fake_slurm_bin(tmp_path / 'bin', ['gpu07', 'gpu08'])}:{os.environ['PATH']}",
                    SLURM_CPUS_ON_NODE="32", SRUN_ARGS="-p short --gres=gpu:8", **SLURM_JOB)
    out = launch("slurm_train.sh", "--dry-run", "my cfg.py", "8", "--seed", "3", env=env)
    assert out.returncode == 0, out.stderr
    slurm, dist = os.path.join(TOOLS, "slurm_train.sh"), os.path.join(TOOLS, "dist_train.sh")
    port = 20000 + 1234567 % 10000  # derived from the job id: 24567
    assert out.stdout.splitlines() == [
        "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 --cpus-per-task=32 -p short "
        f"--gres=gpu:8 bash {slurm} my\\ cfg.py 8 --seed 3",
        f"machine 0 (gpu07): NNODES=2 NODE_RANK=0 MASTER_ADDR=gpu07 MASTER_PORT={port} bash {dist} my\\ cfg.py 8 "
        "--seed 3",
        f"machine 1 (gpu08): NNODES=2 NODE_RANK=1 MASTER_ADDR=gpu07 MASTER_PORT={port} bash {dist} my\\ cfg.py 8 "
        "--seed 3",
    ]
    assert not (tmp_path / "srun_args.txt").exists()  # nothing ran


def test_slurm_runs_dist_train_on_every_machine(tmp_path, argv_python):
    """Through the srun stand-in: each task runs dist_train.sh with its own NODE_RANK and the same rendezvous."""
    env = clean_env(PATH=f"{fake_slurm_bin(tmp_path / 'bin', ['gpu07', 'gpu08'])}:{os.environ['PATH']}",
                    PYTHON=argv_python, FAKE_SRUN_OUT=str(tmp_path), MASTER_PORT="29999", **SLURM_JOB)
    out = launch("slurm_train.sh", "cfg.py", "4", "--seed", "3", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ("slurm_train.sh: job 1234567: 2 machine(s) (gpu07 gpu08), 4 process(es) each, rank 0 on "
                          "gpu07:29999\n")
    srun = (tmp_path / "srun_args.txt").read_text().splitlines()
    assert srun == ["--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash",
                    os.path.join(TOOLS, "slurm_train.sh"), "cfg.py", "4", "--seed", "3"]
    for rank in (0, 1):
        argv = (tmp_path / f"task{rank}.out").read_text().splitlines()
        assert argv == torchrun_flags("dist_train.sh", 4, "--nnodes=2", f"--node_rank={rank}", "--master_addr=gpu07",
                                      "--master_port=29999") + [f"node_rank={rank}"]


@pytest.mark.parametrize("variables, hosts, message", [
    ({}, ["gpu07"], "SLURM_JOB_ID is not set: run this inside a SLURM allocation (an sbatch script or an salloc "
     "shell), e.g. sbatch --nodes=2 --gres=gpu:8 --wrap \"bash {slurm} CONFIG 8\""),
    (dict(SLURM_JOB, SLURM_JOB_NUM_NODES="3"), ["gpu07", "gpu08"], "scontrol show hostnames 'gpu[07-08]' gave 2 "
     "host(s) (gpu07 gpu08), but SLURM_JOB_NUM_NODES=3"),
    (dict(SLURM_JOB, MASTER_PORT="port"), ["gpu07", "gpu08"], "MASTER_PORT must be a port number from 1 to 65535"),
    (dict(SLURM_JOB, SLURM_JOB_NODELIST=""), ["gpu07", "gpu08"], "SLURM_JOB_NODELIST is not set"),
    # the task srun started did not get the job's environment (SLURM_EXPORT_ENV=NONE)
    (dict(OPENTAD_SLURM_STEP="1", SLURM_NODEID="1"), [], "NNODES did not reach the task srun started on"),
])
def test_slurm_refuses_in_one_line(tmp_path, argv_python, variables, hosts, message):
    env = clean_env(PATH=f"{fake_slurm_bin(tmp_path / 'bin', hosts)}:{os.environ['PATH']}", PYTHON=argv_python,
                    FAKE_SRUN_OUT=str(tmp_path), **variables)
    out = launch("slurm_train.sh", "cfg.py", "8", env=env)
    assert (out.returncode, out.stdout) == (2, "")
    expected = f"slurm_train.sh: error: {message.format(slurm=os.path.join(TOOLS, 'slurm_train.sh'))}"
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(expected), out.stderr
    assert not (tmp_path / "srun_args.txt").exists()


def test_slurm_needs_scontrol(tmp_path):
    env = clean_env(PATH="/usr/bin:/bin", **SLURM_JOB)  # no scontrol there (nor on this machine)
    out = launch("slurm_train.sh", "cfg.py", "8", env=env)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == ("slurm_train.sh: error: scontrol is not on PATH: it expands SLURM_JOB_NODELIST='gpu[07-08]' "
                          "into host names\n")
