"""``make demo-fleet``: the cluster, the index, ``camdock server`` and its fleet view on this
machine, and a handful of simulated stations at shift change. Ctrl-C (or ``--seconds``) stops
everything it started."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from camdock import clock, passwords
from camdock.server.engines import Postgres, RabbitCluster, free_port, missing
from camdock.server.fleetsim import SimStation, shift_change


def main() -> int:
    """Run the demo; returns an exit code."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--stations", type=int, default=5)
    p.add_argument("--seconds", type=float, default=600)
    args = p.parse_args()
    if why := missing():
        print(f"demo-fleet: {why}", file=sys.stderr)
        return 1
    pg, cluster = Postgres(), RabbitCluster(3)
    procs: list[subprocess.Popen[bytes]] = []
    stations: list[SimStation] = []
    try:
        print("starting PostgreSQL and a three-node RabbitMQ cluster (a minute) …", flush=True)
        pg.start()
        cluster.start()
        port = free_port()
        cfg = Path(tempfile.mkdtemp(prefix="camdock-demo-")) / "server.toml"
        amqp = ", ".join(f'"{n.amqp_url}"' for n in cluster.nodes)
        cfg.write_text(
            f'[server]\namqp = [{amqp}]\n[database]\ndsn = "{pg.dsn}"\n'
            f'[web]\nlisten = "127.0.0.1:{port}"\n[[users]]\nid = "S1"\nname = "林督導"\n'
            f'role = "supervisor"\npassword = "{passwords.hash_password("demo")}"\n'
        )
        for action in ("run", "web"):
            procs.append(subprocess.Popen([sys.executable, "-m", "camdock", "server", action,
                                           "--config", str(cfg)]))  # fmt: skip
        time.sleep(8)
        hosts = [("127.0.0.1", n.mqtt_port) for n in cluster.nodes]
        for i in range(args.stations):
            today = clock.now().astimezone(ZoneInfo("Asia/Taipei")).date().isoformat()
            st = SimStation(f"分局-{i + 1}", hosts[i % 3 :] + hosts[: i % 3], day=today)
            st.connect()
            stations.append(st)
        print(f"fleet view: http://127.0.0.1:{port}/  (user S1, password demo)", flush=True)
        flows = [shift_change(st, 6, 4) for st in stations]
        for st, flow in zip(stations, flows, strict=True):
            for step in flow:
                st.publish(*step)
                time.sleep(0.01)
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        for st in stations:
            st.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        cluster.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
