"""Demo child programs: a few realistic, chatty processes for conf/demo.conf."""

import itertools
import random
import sys
import time


def web() -> None:
    paths = ["/", "/api/items", "/login", "/static/app.js", "/health"]
    for n in itertools.count():
        status = random.choice([200, 200, 200, 201, 304, 404, 500])
        ms = random.randint(1, 250)
        print(f'127.0.0.1 "GET {random.choice(paths)} HTTP/1.1" {status} {ms}ms req={n}')
        if status == 500:
            print(f"ERROR req={n} unhandled exception in handler", file=sys.stderr)
        time.sleep(0.2)


def worker() -> None:
    for job in itertools.count(1):
        sys.stdout.write(f"job {job}: working")
        for _ in range(5):
            time.sleep(0.3)
            sys.stdout.write(".")  # progress dots: shown after partial_timeout
            sys.stdout.flush()
        print(" done")
        if job % 3 == 0:
            print(f"\x1b[33mWARNING\x1b[0m job {job} took longer than expected", file=sys.stderr)


def flaky() -> None:
    print("flaky: starting up")
    for step in range(5):
        print(f"flaky: step {step} ✓")
        time.sleep(1)
    print("flaky: giving up: cannot reach the database", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    {"web": web, "worker": worker, "flaky": flaky}[sys.argv[1]]()
