"""The CPU cost of ``POST /v1/events`` inside the application: no sockets, no uvicorn, no load generator.

Builds the app over a fresh SQLite file, seeds an organization, an account and a product through the API,
then drives the ASGI app directly from one asyncio loop with ``--in-flight`` requests at a time (each of
``--batch`` metered events) and prints the requests per second, the wall time and the process CPU time per
request. It separates what the application costs from what HTTP and the machine's neighbours cost.

    .venv/bin/python bench/inprocess.py                         # 3,000 one-event requests, 32 in flight
    .venv/bin/python bench/inprocess.py --batch 1000 --requests 60 --in-flight 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from fastapi.testclient import TestClient  # noqa: E402

from meterbook.accounts import service as accounts  # noqa: E402
from meterbook.app import create_app  # noqa: E402
from meterbook.config import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1, help="events per request")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="meterbook-inprocess-")
    app = create_app(Settings(database_url=f"sqlite:///{directory}/bench.db", log_level="warning"))
    with TestClient(app) as client:  # runs the lifespan (migrations) and seeds through the API
        with app.state.database.write() as conn:
            platform = accounts.create_platform_key(conn, "bench").token
        created = client.post(
            "/v1/organizations", json={"name": "bench"}, headers={"Authorization": f"Bearer {platform}"}
        )
        key = created.json()["api_key"]["key"]
        headers = {"Authorization": f"Bearer {key}"}
        account_id = client.post("/v1/accounts", json={"name": "A"}, headers=headers).json()["id"]
        client.put("/v1/products/P", json={"description": "p", "unit_price": 1}, headers=headers)

    request_headers = [
        (b"host", b"bench"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def one(number: int) -> None:
        events = [
            {"id": f"e{number}-{index}", "account_id": account_id, "type": "metered", "product_id": "P", "quantity": 1}
            for index in range(args.batch)
        ]
        body = json.dumps(events).encode()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "query_string": b"",
            "root_path": "",
            "headers": [*request_headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"request {number} answered {sent[0]['status']}: {sent[1:]}")

    async def run() -> None:
        limit = asyncio.Semaphore(args.in_flight)

        async def limited(number: int) -> None:
            async with limit:
                await one(number)

        await one(-1)  # warm up
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(limited(number) for number in range(args.requests)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        print(
            f"{args.requests:,} requests of {args.batch:,} event(s), {args.in_flight} in flight: "
            f"{args.requests / wall:,.0f} req/s ({args.requests * args.batch / wall:,.0f} events/s); "
            f"wall {wall / args.requests * 1e6:,.0f} µs/request, CPU {cpu / args.requests * 1e6:,.0f} µs/request "
            f"({cpu / (args.requests * args.batch) * 1e6:,.1f} µs/event)"
        )

    asyncio.run(run())
    app.state.database.dispose()


if __name__ == "__main__":
    main()
