#!/usr/bin/env python3
"""TCP server: a re-implementation of the networking course's original script.

Accepts one connection, receives until the client half-closes, saves the bytes
as 'received_input.jpeg', replies 'SUCCESS: File received', and exits.

Extra over the original (for tests): --out DIR, and --port 0 binds a free
port whose number is printed in the "Listening" line.
"""

import argparse
import os
import socket


def main():
    parser = argparse.ArgumentParser(description="TCP server that receives one file.")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind (default 8081, 0 = any)")
    parser.add_argument("--buffer", type=int, default=4096, help="receive size (default 4096)")
    parser.add_argument("--out", default=".", help="folder for the received file (default .)")
    args = parser.parse_args()

    output_file = "received_input.jpeg"
    output_path = os.path.join(args.out, output_file)

    server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_socket.bind((args.host, args.port))
    server_socket.listen(1)
    port = server_socket.getsockname()[1]
    print(f"[*] Listening on {args.host}:{port}", flush=True)

    conn, addr = server_socket.accept()
    print(f"[*] Connection established from {addr}", flush=True)

    with open(output_path, "wb") as f:
        while True:
            data = conn.recv(args.buffer)
            if not data:
                break
            f.write(data)
    print(f"[*] File received and saved as '{output_file}'.", flush=True)

    conn.sendall(b"SUCCESS: File received")
    print("[*] Confirmation sent to client.", flush=True)

    conn.close()
    server_socket.close()
    print("[*] Server shutdown.", flush=True)


if __name__ == "__main__":
    main()
