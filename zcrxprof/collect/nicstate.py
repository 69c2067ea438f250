"""The NIC's state around a `--backend zcrx` recording, from the load generator's `nic_state` events.

The receiver prints one `nic_state` event with the settings zcrx depends on as it found them
(`phase: before`, before `--setup-nic` changed anything) and one once they were restored
(`phase: after`, with `changed`: what `--setup-nic` had changed). ``merge`` folds each run's pair
into the dataset's ``metadata.nic``: the interface, the state before the first run and after the
last, per run the pair, the queue each ring registered (``ring_queues``) and whether every
setting came back as it was.
"""
from __future__ import annotations

STATE_KEYS = ("rx_queues", "tcp_data_split", "hds_thresh", "ntuple", "rss_table_size", "rss_entries_on_queue",
              "ntuple_rules", "ntuple_rules_to_queue")


def _state(event: dict | None) -> dict | None:
    return None if event is None else {k: event.get(k) for k in STATE_KEYS}


def ring_queues(queues: list, rings: int) -> list:
    """The queue each ring used: ring i on ``queues[i]`` when the run had one per ring
    (ifq-per-ring with ``--queues``), else every ring on the one queue."""
    queues = list(queues or [])
    if len(queues) == rings or not queues:
        return queues
    return [queues[0]] * rings


def merge(previous: dict | None, run_id: int, events: list[dict], rings: int = 1) -> dict | None:
    """``metadata.nic`` after one more run of ``rings`` rings whose receiver printed ``events`` (its
    `nic_state` events, in order); ``previous`` unchanged when the run printed none (another backend,
    or a run that failed before the NIC was read)."""
    events = [e for e in events if e.get("event") == "nic_state"]
    if not events:
        return previous
    before = next((e for e in events if e.get("phase") == "before"), None)
    after = next((e for e in reversed(events) if e.get("phase") == "after"), None)
    first = before or after
    queues = first.get("queues") or ([first["queue"]] if first.get("queue") is not None else [])
    run = {"run_id": run_id, "ring_queues": ring_queues(queues, rings),
           "before": _state(before), "after": _state(after),
           "changed": list((after or {}).get("changed") or []),
           "restored": before is not None and after is not None and _state(before) == _state(after)}
    nic = dict(previous or {})
    nic.update(ifname=first.get("ifname"), driver=first.get("driver"), queue=first.get("queue"),
               setup_nic=first.get("setup_nic"))
    nic.setdefault("before", run["before"])
    nic["after"] = run["after"]
    nic["runs"] = list(nic.get("runs") or []) + [run]
    nic["restored"] = all(r["restored"] for r in nic["runs"])
    return nic
