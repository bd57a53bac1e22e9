# ruff: noqa: S603, S607, S107  (runs ip, socat and RabbitMQ's scripts from PATH; the local cluster's guest user)
"""A local three-node RabbitMQ cluster on simulated hosts, beside the system broker (5672 stays untouched).

Each broker node, and each application "host", runs in its own network namespace; every pair of them that
talks is joined by a veth link of its own, so taking links down drops packets as a real partition does (no
RST, no FIN). The root namespace (the machine itself: tests, the chaos run's load, `make run`) has a link to
every node and every host. Hosts reach PostgreSQL and Redis through forwarders on the root's link address,
so a host that vanishes loses them too.

    python -m devtools.cluster up [--hosts 2]    three nodes (and hosts), clustered; prints the broker URLs
    python -m devtools.cluster down              removes only what `up` made
    python -m devtools.cluster status | urls [--host app1]
    python -m devtools.cluster kill|start|isolate|heal NODE      (NODE: 1, 2, 3 or rabbit@opc-rmq1)
    python -m devtools.cluster host-down|host-up HOST           (HOST: app1, app2, ...)

Only addresses in 10.77.0.0/16 (CLUSTER_NET) on links this module creates are used. Needs root and `ip netns`
(../shared/CLUSTER-FACTS.md has the recipe this follows).
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A second cluster (the tests' own) beside `make cluster`'s: CLUSTER_NAME picks its namespaces' and links'
# prefix (3 letters), CLUSTER_NET its addresses (10.<net>.0.0/16), CLUSTER_NODES how many nodes.
PREFIX = os.environ.get("CLUSTER_NAME", "opc")[:3]  # every namespace and link this module makes starts with it
NET = int(os.environ.get("CLUSTER_NET", "77"))
NODES = int(os.environ.get("CLUSTER_NODES", "3"))
STATE = Path(os.environ.get("CLUSTER_STATE_DIR", ROOT / "var" / f"cluster-{PREFIX}"))
RABBIT_HOME = Path("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8")
SBIN = RABBIT_HOME / "sbin"
ROOT_ADDRESS = f"10.{NET}.254.1"  # the machine's own end of every link
AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = 5672, 15672, 25672
# The forwarders that give the hosts PostgreSQL and Redis (the system services listen on 127.0.0.1 only).
FORWARDS = {"postgres": (5432, "127.0.0.1:5432"), "redis": (6379, "127.0.0.1:6379")}
# Detects a silent peer in ~net_ticktime (RabbitMQ's default 60 s makes a partition a minute-long stall).
NET_TICKTIME = 15


@dataclass(frozen=True)
class Box:
    """A namespace with one address: a broker node or an application host."""

    name: str  # short: n1, h2
    netns: str
    address: str

    @property
    def hostname(self) -> str:
        return self.netns


def node(i: int) -> Box:
    return Box(f"n{i}", f"{PREFIX}-rmq{i}", f"10.{NET}.0.{i}")


def host(h: int) -> Box:
    return Box(f"h{h}", f"{PREFIX}-app{h}", f"10.{NET}.1.{h}")


MACHINE = Box("r", "", ROOT_ADDRESS)  # the root namespace


def nodename(i: int) -> str:
    return f"rabbit@{node(i).hostname}"


def node_index(ref: str) -> int:
    """1 from '1', 'n1', 'opc-rmq1' or 'rabbit@opc-rmq1'."""
    digits = "".join(ch for ch in ref.rsplit("rmq", 1)[-1] if ch.isdigit())
    i = int(digits)
    if not 1 <= i <= NODES:
        raise SystemExit(f"no node {ref!r}: 1..{NODES}")
    return i


def host_index(ref: str) -> int:
    return int("".join(ch for ch in ref.rsplit("app", 1)[-1] if ch.isdigit()))


def sh(*argv: str, netns: str = "", check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def ip(*args: str, netns: str = "", check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", *args, netns=netns, check=check)


def _ifname(a: Box, b: Box) -> str:
    return f"{PREFIX}{a.name}-{b.name}"  # <= 15 characters: opcn1-n2, opcr-h1


def _link_pairs(hosts: int) -> list[tuple[Box, Box]]:
    nodes = [node(i) for i in range(1, NODES + 1)]
    apps = [host(h) for h in range(1, hosts + 1)]
    pairs = [(MACHINE, n) for n in nodes] + [(MACHINE, a) for a in apps]
    pairs += [(a, n) for a in apps for n in nodes]
    pairs += [(nodes[i], nodes[j]) for i in range(len(nodes)) for j in range(i + 1, len(nodes))]
    return pairs


def _link_side_up(me: Box, peer: Box) -> None:
    dev = _ifname(me, peer)
    ip("addr", "replace", f"{me.address}/32", "dev", dev, netns=me.netns)
    ip("link", "set", dev, "up", netns=me.netns)
    # Taking a link down removes its routes: heal puts them back.
    ip("route", "replace", f"{peer.address}/32", "dev", dev, "src", me.address, netns=me.netns)


def _link_create(a: Box, b: Box) -> None:
    ip("link", "add", _ifname(a, b), "type", "veth", "peer", "name", _ifname(b, a))
    for me, peer in ((a, b), (b, a)):
        if me.netns:
            ip("link", "set", _ifname(me, peer), "netns", me.netns)
    _link_side_up(a, b)
    _link_side_up(b, a)


def link_set(a: Box, b: Box, *, up: bool, side: Box | None = None) -> None:
    """Down: `side`'s end of the link goes down (default a's). The other end keeps its address and its route
    with no carrier, so what it sends is dropped silently, never routed elsewhere (taking both ends down
    removed the root's route: its packets then took the machine's default route). Up: both ends and routes."""
    if up:
        _link_side_up(a, b)
        _link_side_up(b, a)
    else:
        me, peer = (a, b) if side in (None, a) else (b, a)
        ip("link", "set", _ifname(me, peer), "down", netns=me.netns, check=False)


def _state() -> dict:
    path = STATE / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(state: dict) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "state.json").write_text(json.dumps(state, indent=2))


def hosts_count() -> int:
    return int(_state().get("hosts", 0))


# --- broker nodes -----------------------------------------------------------------------------------------


def _node_dir(i: int) -> Path:
    return STATE / node(i).hostname


def _write_node_files(i: int) -> None:
    d = _node_dir(i)
    (d / "home").mkdir(parents=True, exist_ok=True)
    cookie = STATE / "cookie"
    target = d / "home" / ".erlang.cookie"
    if not target.exists():
        shutil.copyfile(cookie, target)
        target.chmod(0o400)
    (d / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {AMQP_PORT}\n"
        f"management.tcp.port = {MANAGEMENT_PORT}\n"
        "loopback_users = none\n"
        "cluster_partition_handling = pause_minority\n"
        f"net_ticktime = {NET_TICKTIME}\n"
        "vm_memory_high_watermark.absolute = 1GB\n"
        "disk_free_limit.absolute = 200MB\n"
    )
    (d / "advanced.config").write_text("[].\n")
    (d / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (d / "rabbitmq-env.conf").write_text("")
    (STATE / "inetrc").write_text(
        "".join(
            f'{{host,{{{node(j).address.replace(".", ",")}}},["{node(j).hostname}"]}}.\n' for j in range(1, NODES + 1)
        )
        + "{lookup,[file,native]}.\n"
    )


def _node_env(i: int) -> dict:
    d = _node_dir(i)
    return {
        "PATH": "/usr/lib/rabbitmq/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(d / "home"),
        "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
        "RABBITMQ_NODENAME": nodename(i),
        "RABBITMQ_NODE_PORT": str(AMQP_PORT),
        "RABBITMQ_DIST_PORT": str(DIST_PORT),
        "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
        "RABBITMQ_LOG_BASE": str(d / "log"),
        "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
        "ERL_INETRC": str(STATE / "inetrc"),
    }


def ctl(i: int, *args: str, tool: str = "rabbitmqctl", timeout: float = 60, check: bool = True):
    """A CLI command against node i, run on its own host."""
    env = _node_env(i)
    return sh(
        "env", "-i", *(f"{k}={v}" for k, v in env.items()), str(SBIN / tool), "-n", nodename(i), *args,
        netns=node(i).netns, timeout=timeout, check=check,
    )  # fmt: skip


def node_pid(i: int) -> int | None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int((_node_dir(i) / "rabbit.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    return None


def node_start(i: int, *, wait: bool = True) -> None:
    if node_pid(i):
        return
    _write_node_files(i)
    env = _node_env(i)
    log = open(_node_dir(i) / "console.log", "ab")  # noqa: SIM115  (the node keeps it)
    subprocess.Popen(
        ["ip", "netns", "exec", node(i).netns, "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         str(SBIN / "rabbitmq-server")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    if wait:
        node_wait(i)


def node_wait(i: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctl(i, "await_startup", "--timeout", "10", check=False, timeout=30).returncode == 0:
            return
        time.sleep(1)
    raise TimeoutError(f"{nodename(i)} did not start in {timeout}s; see {_node_dir(i) / 'log'}")


def node_kill(i: int) -> int | None:
    """kill -9 of the node's VM (its epmd stays, as on a real host where only the broker crashed)."""
    pid = node_pid(i)
    if pid:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
    return pid


def node_links(i: int) -> list[tuple[Box, Box]]:
    me = node(i)
    return [(a, b) for a, b in _link_pairs(hosts_count()) if me in (a, b)]


def node_isolate(i: int) -> None:
    """The node's host drops off the network: no peer, no client reaches it, and nothing says so."""
    for a, b in node_links(i):
        link_set(a, b, up=False, side=node(i))


def node_heal(i: int) -> None:
    for a, b in node_links(i):
        link_set(a, b, up=True)


def host_links(h: int) -> list[tuple[Box, Box]]:
    me = host(h)
    return [(a, b) for a, b in _link_pairs(hosts_count()) if me in (a, b)]


def host_set(h: int, *, up: bool) -> None:
    for a, b in host_links(h):
        link_set(a, b, up=up, side=host(h))


# --- URLs -------------------------------------------------------------------------------------------------


def amqp_urls(vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
    """Celery/kombu's `;`-separated broker list for the cluster."""
    from urllib.parse import quote

    v = quote(vhost, safe="") if vhost != "/" else ""
    return ";".join(f"amqp://{user}:{password}@{node(i).address}:{AMQP_PORT}/{v}" for i in range(1, NODES + 1))


def management_urls(user: str = "guest", password: str = "guest") -> str:
    return ";".join(f"http://{user}:{password}@{node(i).address}:{MANAGEMENT_PORT}/api/" for i in range(1, NODES + 1))


# Forwarders the chaos run adds for the local PostgreSQL HA (devtools/db_ha.py): its pooler and its primary.
DB_HA_FORWARDS = {"pooled": 6432, "direct": 5433}


def database_url(db: str, forward: str = "postgres") -> str:
    """PostgreSQL as a host sees it, through the root's forwarder: the system PostgreSQL (`postgres`), or the
    local HA's pooler (`pooled`) or primary (`direct`) once `forward_start` has started theirs."""
    port = FORWARDS["postgres"][0] if forward == "postgres" else DB_HA_FORWARDS[forward]
    return f"postgres://postgres@{ROOT_ADDRESS}:{port}/{db}"


def redis_url(db: int) -> str:
    return f"redis://{ROOT_ADDRESS}:{FORWARDS['redis'][0]}/{db}"


def host_command(h: int, argv: list[str], env: dict) -> list[str]:
    """argv run on host h, with exactly `env`."""
    return ["ip", "netns", "exec", host(h).netns, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]


# --- up / down --------------------------------------------------------------------------------------------


def _forwarders_start() -> None:
    for name, (port, target) in FORWARDS.items():
        forward_start(name, port, target)


def forward_start(name: str, port: int, target: str) -> None:
    """A forwarder on the root's link address, `port` -> `target` (a service on the machine's loopback), for
    the hosts: started again if it runs (another target); `down` stops every one."""
    forward_stop(name)
    log = open(STATE / f"forward-{name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        # TCP keepalive toward the hosts: a host that vanished mid-transaction has its database session
        # closed (and its row locks freed) in ~11 s, as a server's tcp_keepalives_* settings would do.
        ["socat", f"TCP-LISTEN:{port},bind={ROOT_ADDRESS},reuseaddr,fork,backlog=512,keepalive,keepidle=5,"
         "keepintvl=2,keepcnt=3", f"TCP:{target},nodelay"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    (STATE / f"forward-{name}.pid").write_text(str(proc.pid))
    # Listening before anyone is told the address.
    deadline = time.monotonic() + 5
    while sh("ss", "-Hltn", f"sport = :{port}", check=False).stdout.find(ROOT_ADDRESS) < 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"forwarder {name} did not listen on {ROOT_ADDRESS}:{port}")
        time.sleep(0.05)


def forward_stop(name: str) -> None:
    pidfile = STATE / f"forward-{name}.pid"
    with contextlib.suppress(Exception):
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    pidfile.unlink(missing_ok=True)


def up(hosts: int = 2) -> None:
    if _state().get("up"):
        status()
        return
    for tool in ("ip", "socat"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install {'iproute2' if tool == 'ip' else tool})")
    STATE.mkdir(parents=True, exist_ok=True)
    _save({"up": False, "hosts": hosts})  # so that `down` can clean a half-made cluster
    cookie = STATE / "cookie"
    if not cookie.exists():
        import secrets

        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
    for box in [node(i) for i in range(1, NODES + 1)] + [host(h) for h in range(1, hosts + 1)]:
        ip("netns", "add", box.netns)
        ip("link", "set", "lo", "up", netns=box.netns)
    # Whatever happens to a link, nothing for the cluster's addresses ever leaves the machine: without a /32
    # route of its own, a packet to 10.<NET>.0.0/16 is dropped here (not sent to the default gateway).
    ip("route", "replace", "blackhole", f"10.{NET}.0.0/16")
    for a, b in _link_pairs(hosts):
        _link_create(a, b)
    _forwarders_start()
    for i in range(1, NODES + 1):
        node_start(i, wait=False)
    for i in range(1, NODES + 1):
        node_wait(i)
    for i in range(2, NODES + 1):
        if nodename(1) not in ctl(i, "cluster_status", "--formatter", "json").stdout.split('"running_nodes"')[-1]:
            ctl(i, "stop_app")
            ctl(i, "reset")
            ctl(i, "join_cluster", nodename(1))
            ctl(i, "start_app")
    _save({"up": True, "hosts": hosts})
    status()


def down() -> None:
    state = _state()
    hosts = int(state.get("hosts", 0))
    for i in range(1, NODES + 1):
        node_kill(i)
    for pidfile in STATE.glob("forward-*.pid") if STATE.exists() else []:
        forward_stop(pidfile.name.removeprefix("forward-").removesuffix(".pid"))
    # Anything still running in our namespaces (an epmd, a host's processes) goes with them.
    for box in [node(i) for i in range(1, NODES + 1)] + [host(h) for h in range(1, max(hosts, 8) + 1)]:
        pids = sh("ip", "netns", "pids", box.netns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", box.netns, check=False)
    for a, b in _link_pairs(max(hosts, 8)):
        if not a.netns:
            ip("link", "del", _ifname(a, b), check=False)
    ip("route", "del", "blackhole", f"10.{NET}.0.0/16", check=False)
    if STATE.exists():
        shutil.rmtree(STATE, ignore_errors=True)


def vhost_fresh(vhost: str) -> None:
    ctl(1, "delete_vhost", vhost, check=False)
    ctl(1, "add_vhost", vhost)
    ctl(1, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def is_up() -> bool:
    return bool(_state().get("up"))


def status() -> None:
    state = _state()
    print(f"cluster: {'up' if state.get('up') else 'down'} ({STATE})")
    for i in range(1, NODES + 1):
        print(f"  {nodename(i):18} {node(i).address}:{AMQP_PORT}  pid {node_pid(i) or '-'}")
    for h in range(1, int(state.get("hosts", 0)) + 1):
        print(f"  host {host(h).netns:13} {host(h).address}")
    print(f"CELERY_BROKER_URL={amqp_urls()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "action",
        choices=["up", "down", "status", "urls", "vhost", "kill", "start", "isolate", "heal", "host-down", "host-up"],
    )
    parser.add_argument("target", nargs="?")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--vhost", default="/")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the local cluster needs root (network namespaces)")
    action = args.action
    if action == "up":
        up(args.hosts)
    elif action == "down":
        down()
    elif action == "status":
        status()
    elif action == "urls":
        print(amqp_urls(args.vhost))
    elif action == "vhost":  # a fresh vhost TARGET for guest, on the whole cluster
        vhost_fresh(args.target or "")
    elif action in ("kill", "start", "isolate", "heal"):
        i = node_index(args.target or "")
        {"kill": node_kill, "start": node_start, "isolate": node_isolate, "heal": node_heal}[action](i)
    else:
        host_set(host_index(args.target or ""), up=action == "host-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
