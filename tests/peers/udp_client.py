#!/usr/bin/env python3
"""UDP client: a re-implementation of the networking course's original script.

Sends the file as datagrams of a 4-byte big-endian sequence number (0, 1,
2, ...) and up to --buffer payload bytes, then the 4-byte end marker -1,
waits up to 5 s for the server's reply, and prints a transfer summary.
"""

import argparse
import os
import socket
import struct
import time


def main():
    parser = argparse.ArgumentParser(description="UDP client that sends one file.")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8082, help="server port (default 8082)")
    parser.add_argument("--file", default="input.jpeg", help="file to send (default input.jpeg)")
    parser.add_argument("--buffer", type=int, default=4096, help="payload bytes per datagram (default 4096)")
    args = parser.parse_args()

    file_size = os.path.getsize(args.file)
    print(
        f"[*] Preparing to send '{args.file}' ({file_size} bytes) to {args.host}:{args.port} over UDP",
        flush=True,
    )
    print(f"[*] Using buffer size of {args.buffer} bytes", flush=True)

    client_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_addr = (args.host, args.port)

    start_time = time.time()
    seq = 0
    with open(args.file, "rb") as f:
        while True:
            chunk = f.read(args.buffer)
            if not chunk:
                break
            client_socket.sendto(struct.pack("!i", seq) + chunk, server_addr)
            seq += 1
    client_socket.sendto(struct.pack("!i", -1), server_addr)
    print(f"[*] File '{args.file}' sent ({seq} packets).", flush=True)

    client_socket.settimeout(5)
    try:
        response, _ = client_socket.recvfrom(args.buffer)
        print(f"[*] Server response: {response.decode(errors='replace')}", flush=True)
    except socket.timeout:
        print("[!] No response from server (timeout).", flush=True)
    end_time = time.time()

    total_time = end_time - start_time
    throughput = (file_size * 8) / total_time / 1e6 if total_time > 0 else 0.0

    print("", flush=True)
    print("=== UDP Transfer Summary ===", flush=True)
    print(f"File size    : {file_size} bytes", flush=True)
    print(f"Buffer size  : {args.buffer} bytes", flush=True)
    print(f"Packets sent : {seq}", flush=True)
    print(f"Total time   : {total_time:.3f} seconds", flush=True)
    print(f"Throughput   : {throughput:.2f} Mbps", flush=True)

    client_socket.close()
    print("[*] Socket closed.", flush=True)


if __name__ == "__main__":
    main()
