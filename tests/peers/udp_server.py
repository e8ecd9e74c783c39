#!/usr/bin/env python3
"""UDP server: a re-implementation of the networking course's original script.

Each datagram is a 4-byte big-endian signed sequence number (struct '!i')
followed by up to --buffer payload bytes. Sequence -1 ends the transfer (any
bytes after its 4-byte header are ignored). Payloads are kept by sequence
number, written in sorted order as 'received_input_udp.jpeg', and the sender
of the end marker gets 'SUCCESS: File received via UDP'. Like the original,
it does not check for missing packets and waits forever for the marker.

Extra over the original (for tests): --out DIR, and --port 0 binds a free
port whose number is printed in the "listening" line.
"""

import argparse
import os
import socket
import struct


def main():
    parser = argparse.ArgumentParser(description="UDP server that receives one file.")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8082, help="port to bind (default 8082, 0 = any)")
    parser.add_argument("--buffer", type=int, default=4096, help="payload bytes per datagram (default 4096)")
    parser.add_argument("--out", default=".", help="folder for the received file (default .)")
    args = parser.parse_args()

    output_file = "received_input_udp.jpeg"
    output_path = os.path.join(args.out, output_file)

    server_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_socket.bind((args.host, args.port))
    port = server_socket.getsockname()[1]
    print(f"[*] UDP server listening on {args.host}:{port}", flush=True)

    received = {}
    client_addr = None
    while True:
        packet, addr = server_socket.recvfrom(args.buffer + 4)
        if client_addr is None:
            print(f"[*] Receiving packets from {addr}", flush=True)
        client_addr = addr
        seq = struct.unpack("!i", packet[:4])[0]
        if seq == -1:
            break
        received[seq] = packet[4:]

    with open(output_path, "wb") as f:
        for seq in sorted(received):
            f.write(received[seq])
    print(f"[*] File received and saved as '{output_file}'.", flush=True)

    server_socket.sendto(b"SUCCESS: File received via UDP", client_addr)
    print("[*] Confirmation sent to client.", flush=True)

    server_socket.close()
    print("[*] Server shutdown.", flush=True)


if __name__ == "__main__":
    main()
