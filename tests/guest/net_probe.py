# What root in a test guest tries on the network, for tests/e2e_network_test.ts.
# Each argument is a JSON check, base64-encoded (ssh hands arguments to a shell); the answers come out as one JSON list.
import base64
import http.client
import json
import random
import socket
import struct
import subprocess
import sys
import time


def tcp(addr, port, timeout=4):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        s.close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as error:
        return "error %s" % error.errno


def http_get(host, ip=None, path="/"):
    try:
        c = http.client.HTTPConnection(ip or host, 80, timeout=10)
        c.request("GET", path, headers={"Host": host})
        return "http %d" % c.getresponse().status
    except Exception as error:
        return "failed %s" % type(error).__name__


def resolve(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as error:
        return "failed %s" % error.errno


def dns(server, name):
    labels = b"".join(bytes([len(l)]) + l.encode() for l in name.split("."))
    query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(4)
    s.sendto(query, (server, 53))
    try:
        reply = s.recv(4096)
        return "rcode %d answers %d" % (reply[3] & 15, struct.unpack(">H", reply[6:8])[0])
    except socket.timeout:
        return "timeout"


def _sum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_of(dev, family):
    out = subprocess.run(["ip", "-o", family, "addr", "show", "dev", dev, "scope", "global"],
                         capture_output=True, text=True).stdout.split()
    return out[out.index("inet6" if family == "-6" else "inet") + 1].split("/")[0] if out else None


def syn(targets, port, gateway=None, twice=False):
    """Raw TCP SYNs on the wire (AF_PACKET), past the guest's own routing.
    Without a default route (restricted SLIRP gives none), to `gateway` on the first interface with an address.
    With `twice`, each SYN goes out twice back to back, ten connections a target: an old passt that reads
    both in one go spins for ever."""
    route = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    if "via" in route:
        dev, gw = route[route.index("dev") + 1], route[route.index("via") + 1]
    else:
        dev = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                             capture_output=True, text=True).stdout.split()[1]
        gw = gateway
    mine = bytes.fromhex(open("/sys/class/net/%s/address" % dev).read().strip().replace(":", ""))
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (gw, 9))
    time.sleep(0.5)
    neigh = subprocess.run(["ip", "neigh", "show", gw, "dev", dev], capture_output=True, text=True).stdout.split()
    theirs = bytes.fromhex(neigh[neigh.index("lladdr") + 1].replace(":", ""))
    src4, src6 = _ip_of(dev, "-4"), _ip_of(dev, "-6")
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((dev, 0))
    sent = []
    for target in targets:
        target = gw if target == "gateway" else target
        v6 = ":" in target
        if v6 and not src6:
            continue
        src = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, src6 if v6 else src4)
        dst = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, target)
        for _ in range(10 if twice else 3):
            sport = random.randint(20000, 60000)
            tcp_header = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
            if v6:
                pseudo = src + dst + struct.pack("!I3xB", len(tcp_header), 6)
            else:
                pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp_header))
            tcp_header = tcp_header[:16] + struct.pack("!H", _sum(pseudo + tcp_header)) + tcp_header[18:]
            if v6:
                ip = struct.pack("!IHBB", 6 << 28, len(tcp_header), 6, 64) + src + dst
                frame = theirs + mine + b"\x86\xdd" + ip + tcp_header
            else:
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp_header), 0, 0x4000, 64, 6, 0, src, dst)
                ip = ip[:10] + struct.pack("!H", _sum(ip)) + ip[12:]
                frame = theirs + mine + b"\x08\x00" + ip + tcp_header
            raw.send(frame)
            if twice:
                raw.send(frame)
            else:
                time.sleep(0.1)
        sent.append(target)
    time.sleep(1.5)
    return sent


answers = []
for argument in sys.argv[1:]:
    check = json.loads(base64.b64decode(argument))
    kind = check.pop("check")
    answers.append({"tcp": tcp, "http": http_get, "resolve": resolve, "dns": dns, "syn": syn}[kind](**check))
print(json.dumps(answers))
