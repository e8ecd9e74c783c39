#!/usr/bin/env python3
"""TCP client: a re-implementation of the networking course's original script.

Connects, sends the file in --buffer sized chunks, half-closes the socket,
reads the server's reply, and prints a transfer summary.
"""

import argparse
import os
import socket
import time


def main():
    parser = argparse.ArgumentParser(description="TCP client that sends one file.")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="server port (default 8081)")
    parser.add_argument("--file", default="input.jpeg", help="file to send (default input.jpeg)")
    parser.add_argument("--buffer", type=int, default=4096, help="bytes per send (default 4096)")
    args = parser.parse_args()

    file_size = os.path.getsize(args.file)
    print(f"[*] Preparing to send '{args.file}' ({file_size} bytes) to {args.host}:{args.port}", flush=True)
    print(f"[*] Using buffer size of {args.buffer} bytes", flush=True)

    client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    start_time = time.time()
    client_socket.connect((args.host, args.port))
    print(f"[*] Connected to {args.host}:{args.port}", flush=True)

    chunks_sent = 0
    with open(args.file, "rb") as f:
        while True:
            chunk = f.read(args.buffer)
            if not chunk:
                break
            client_socket.sendall(chunk)
            chunks_sent += 1
    client_socket.shutdown(socket.SHUT_WR)
    print(f"[*] File '{args.file}' sent ({chunks_sent} chunks).", flush=True)

    response = b""
    while True:
        data = client_socket.recv(args.buffer)
        if not data:
            break
        response += data
    end_time = time.time()
    print(f"[*] Server response: {response.decode(errors='replace')}", flush=True)

    total_time = end_time - start_time
    throughput = (file_size * 8) / total_time / 1e6 if total_time > 0 else 0.0

    print("", flush=True)
    print("=== TCP Transfer Summary ===", flush=True)
    print(f"File size   : {file_size} bytes", flush=True)
    print(f"Buffer size : {args.buffer} bytes", flush=True)
    print(f"Chunks sent : {chunks_sent}", flush=True)
    print(f"Total time  : {total_time:.3f} seconds", flush=True)
    print(f"Throughput  : {throughput:.2f} Mbps", flush=True)

    client_socket.close()
    print("[*] Connection closed.", flush=True)


if __name__ == "__main__":
    main()
