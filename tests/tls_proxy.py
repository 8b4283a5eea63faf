#!/usr/bin/env python3
"""A TLS front for a plain TCP service, for testing amqps:// against the
local RabbitMQ without reconfiguring it.

Usage: tls_proxy.py CERT_PEM KEY_PEM LISTEN_PORT TARGET_PORT

Listens on 127.0.0.1:LISTEN_PORT, terminates TLS with the given certificate
and forwards the bytes to 127.0.0.1:TARGET_PORT. Prints "ready" when it
listens, and "tls-connections N" each time a TLS handshake completes.
"""
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    cert, key, listen_port, target_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen()
    print("ready", flush=True)
    count = 0
    while True:
        raw, _ = server.accept()
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            print(f"handshake failed: {e}", flush=True)
            raw.close()
            continue
        count += 1
        print(f"tls-connections {count}", flush=True)
        upstream = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(tls, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()


if __name__ == "__main__":
    main()
