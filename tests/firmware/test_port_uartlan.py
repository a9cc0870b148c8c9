"""gwbox.port.uartlan: a serial device's bytes as datagrams for one target, replies back to it."""
from fakeio import FakeLan, FakeUart
from gwbox.port.uartlan import GAP_MS, MAX, Lans, UartLan

TARGET = (10 << 24) | 5


def lan():
    t = [1000]
    u = FakeUart()
    return UartLan(u, TARGET, 4001, clock=lambda: t[0]), u, t


def test_a_burst_is_one_datagram_once_the_line_is_quiet():
    lan_, u, t = lan()
    u.rx.extend(b"PRICE 12")
    assert lan_.recv() is None
    t[0] += 10
    u.rx.extend(b".50\r\n")
    assert lan_.recv() is None
    t[0] += GAP_MS
    assert lan_.recv() == (TARGET, 4001, b"PRICE 12.50\r\n")
    assert lan_.recv() is None


def test_a_long_stream_goes_in_datagrams_of_at_most_max_bytes():
    lan_, u, t = lan()
    u.rx.extend(bytes(range(256)) * 2)
    got = []
    for _ in range(10):
        d = lan_.recv()
        if d is None:
            t[0] += GAP_MS
            continue
        got.append(d[2])
    assert [len(g) for g in got] == [MAX, MAX, 512 - 2 * MAX] and b"".join(got) == bytes(range(256)) * 2


def test_replies_from_the_target_go_to_the_uart_and_others_do_not():
    lan_, u, t = lan()
    assert lan_.send(TARGET, 4001, b"OK\r\n") is True and u.tx == b"OK\r\n"
    assert lan_.send(TARGET + 1, 4001, b"not for the till") is False and u.tx == b"OK\r\n"


def test_a_reply_longer_than_the_uart_takes_goes_out_whole_over_the_next_passes():
    lan_, u, t = lan()
    u.room = 16
    assert lan_.send(TARGET, 4001, b"0123456789" * 3) is True
    assert bytes(u.tx) == b"0123456789012345"
    lan_.send(TARGET, 4001, b"next")
    u.tx = bytearray()  # the line drained the buffer
    lan_.recv()
    assert bytes(u.tx) == b"67890123456789ne"
    u.tx = bytearray()
    lan_.recv()
    assert bytes(u.tx) == b"xt" and lan_.held is None and lan_.dropped == 0


def test_both_lan_sides_together():
    lan_, u, t = lan()
    udp = FakeLan()
    both = Lans(lan_, udp)
    udp.inbox.append((TARGET + 1, 53, b"udp"))
    u.rx.extend(b"serial")
    assert both.recv() == (TARGET + 1, 53, b"udp")  # the serial bytes wait for a quiet line
    assert both.recv() is None
    t[0] += GAP_MS
    assert both.recv() == (TARGET, 4001, b"serial")
    both.send(TARGET, 4001, b"to the till")
    both.send(TARGET + 1, 53, b"to the app")
    assert u.tx == b"to the till" and udp.sent == [(TARGET + 1, 53, b"to the app")]
