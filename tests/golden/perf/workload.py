"""A tiny named-thread loopback workload used only to record the golden perf files.

Threads rename themselves (comm) `rx0`, `tx0` and `idle0` like the load generator's threads, so
`perf stat --per-thread` shows one busy receiver, one busy sender and one thread that never runs.
"""
import socket
import sys
import threading
import time


def name_self(name: str) -> None:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
        f.write(name)


def rx(conn: socket.socket) -> None:
    name_self("rx0")
    while conn.recv(1 << 16):
        pass


def tx(port: int, seconds: float) -> None:
    name_self("tx0")
    buf = b"x" * (1 << 16)
    with socket.create_connection(("127.0.0.1", port)) as s:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.sendall(buf)


def idle(stop: threading.Event) -> None:
    name_self("idle0")
    stop.wait()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    stop = threading.Event()
    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]
    ti = threading.Thread(target=idle, args=(stop,))
    ti.start()
    tt = threading.Thread(target=tx, args=(port, seconds))
    tt.start()
    conn, _ = lst.accept()
    tr = threading.Thread(target=rx, args=(conn,))
    tr.start()
    tt.join()
    tr.join()
    stop.set()
    ti.join()


if __name__ == "__main__":
    main()
