"""What the embedded broker (Tansu) costs per waveform chunk, by the producer's linger and the consumer's fetch wait.

    .venv/bin/python bench/broker_batches.py [--rate 1000] [--seconds 15]
    -> bench/results/broker_batches.json, broker_batches.png

A producer process sends ``--rate`` chunks/s (3.7 KB each, keyed over 1,000 patients, 8 partitions, as ``holmes replay``
does) to a fresh embedded broker while one consumer process polls them (``streams.consumer.ConsumerConfig``'s settings);
the CPU of each process is read from /proc over ``--seconds`` of steady sending. The broker's cost follows the number of
record batches: a longer linger packs more chunks per batch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _servebench import RESULTS, machine, write_json  # noqa: E402

PRODUCER = r'''
import os, sys, time
from kafka import KafkaProducer
rate, secs, boot, linger = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
p = KafkaProducer(bootstrap_servers=boot, linger_ms=linger, batch_size=512 * 1024)
payload = os.urandom(3700)
t0, n = time.time(), 0
while time.time() - t0 < secs:
    d = t0 + n / rate - time.time()
    if d > 0:
        time.sleep(d)
    p.send("icu.waveforms", key=f"bed-{n % 1000}".encode(), value=payload)
    n += 1
p.flush()
'''
CONSUMER = r'''
import sys, time
from kafka import KafkaConsumer
boot, secs, wait = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=boot, group_id="broker-batches", enable_auto_commit=False, auto_offset_reset="latest",
                  session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_records=5000, fetch_max_wait_ms=wait, fetch_min_bytes=1)
c.subscribe(["icu.waveforms"])
t0, n = time.time(), 0
while time.time() - t0 < secs:
    n += sum(len(v) for v in c.poll(timeout_ms=50).values())
print(n)
'''


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(linger_ms: int, wait_ms: int, rate: float, seconds: float) -> dict:
    from streams.broker import EmbeddedBroker, ensure_topics

    py = sys.executable
    with EmbeddedBroker() as b:
        ensure_topics(b.settings)
        tansu = b._proc.pid
        cons = subprocess.Popen([py, "-c", CONSUMER, b.bootstrap_servers, str(seconds + 25), str(wait_ms)], stdout=subprocess.PIPE, text=True)
        time.sleep(8)  # joins the group
        prod = subprocess.Popen([py, "-c", PRODUCER, str(rate), str(seconds + 10), b.bootstrap_servers, str(linger_ms)])
        time.sleep(6)
        c0 = {"broker": cpu_s(tansu), "producer": cpu_s(prod.pid), "consumer": cpu_s(cons.pid)}
        t0 = time.time()
        time.sleep(seconds)
        c1 = {"broker": cpu_s(tansu), "producer": cpu_s(prod.pid), "consumer": cpu_s(cons.pid)}
        dt = time.time() - t0
        prod.wait()
        got = int((cons.communicate()[0] or "0").strip() or 0)
    cores = {k: round((c1[k] - c0[k]) / dt, 3) for k in c0}
    return {"linger_ms": linger_ms, "fetch_max_wait_ms": wait_ms, "rate_per_s": rate, "cores": cores,
            "ms_per_chunk": {k: round(v / rate * 1e3, 4) for k, v in cores.items()}, "consumed": got}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--lingers", default="2,20,100")
    ap.add_argument("--out", default="broker_batches.json")
    args = ap.parse_args()
    rows = []
    for linger in [int(x) for x in args.lingers.split(",")]:
        row = one(linger, 50, args.rate, args.seconds)
        rows.append(row)
        print(f"linger {linger:4d} ms: broker {row['cores']['broker']:.3f} cores ({row['ms_per_chunk']['broker']:.3f} ms/chunk), "
              f"producer {row['cores']['producer']:.3f}, consumer {row['cores']['consumer']:.3f}", flush=True)
    out = {"machine": machine(), "command": "bench/broker_batches.py " + " ".join(sys.argv[1:]), "rows": rows,
           "note": "one producer and one consumer process on a fresh embedded broker (Tansu, in memory); CPU from /proc"}
    path = write_json(args.out, out)
    _plot(rows, RESULTS / Path(args.out).with_suffix(".png").name)
    print(f"wrote {path}")
    return 0


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = range(len(rows))
    w = 0.27
    for i, k in enumerate(("broker", "producer", "consumer")):
        ax.bar([j + (i - 1) * w for j in x], [r["cores"][k] for r in rows], w, label=k)
    ax.set_xticks(list(x), [f"linger {r['linger_ms']} ms" for r in rows])
    ax.set_ylabel(f"cores at {rows[0]['rate_per_s']:g} chunks/s")
    ax.set_title("embedded broker cost by producer batch wait")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
