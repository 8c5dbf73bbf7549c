#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that holds every chunk for DELAY ms each way,
as a registry elsewhere answers (netem needs a kernel module these machines
lack). Usage: latency-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS"""
import asyncio
import sys

listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000


async def pipe(reader, writer):
    try:
        while chunk := await reader.read(1 << 16):
            await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


async def serve(client_r, client_w):
    server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w), return_exceptions=True)


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


asyncio.run(main())
