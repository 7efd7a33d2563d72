"""A DNS server on loopback for the egress tests, run with the egress venv's Python (dnspython).

Usage: dns_server.py ADDRESS PORT NAME=IP...; answers A queries for those names, NXDOMAIN for the
rest, and prints "ready" once it listens. It stops when its standard input closes.
"""

import socket
import sys
import threading

import dns.message
import dns.rcode
import dns.rrset


def main() -> None:
    address, port, *pairs = sys.argv[1:]
    names = {name.lower().rstrip(".") + ".": ip for name, _, ip in (pair.partition("=") for pair in pairs)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, int(port)))
    print("ready", sock.getsockname()[1], flush=True)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        sock.close()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        ip = names.get(question.name.to_text().lower())
        if ip is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == 1:
            reply.answer.append(dns.rrset.from_text(question.name, 1, "IN", "A", ip))
        sock.sendto(reply.to_wire(), peer)


if __name__ == "__main__":
    main()
