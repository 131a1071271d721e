"""A tiny authoritative DNS server for the tests: UDP on 127.0.0.1, answers from a dict.

dnspython builds and parses the messages; the doctor's resolver talks to it over the wire,
exactly as to any name server. A name in the zone without the asked type: no answer
(NOERROR); a name not in the zone: NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = dict[tuple[str, str], list[str]]  # (name, type) -> records as zone-file text


class DnsServer:
    def __init__(self, zone: Zone) -> None:
        self.zone = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in zone.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.asked: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.asked.append((name, rdtype))
        if not any(n == name for n, _ in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        records = self.zone.get((name, rdtype), [])
        if records:
            if rdtype == "TXT":  # each record one quoted string, as published
                records = ['"' + r.replace('"', '\\"') + '"' for r in records]
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, rdtype, records)
            )
        return response
