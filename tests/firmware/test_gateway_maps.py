"""A gateway's SPI maps with several boxes logged in (gwbox.endpoint): each packet finds its
session by map, whatever the number of boxes."""
# mp-heap: 256K  (a gateway and six boxes in one interpreter: seven endpoints, each box making
# its next key ahead after its login; the gateway's maps are under test here, not a device heap)
import netsim
from gwbox.config import LinkConfig
from gwbox.endpoint import Endpoint


def test_spis_are_found_by_map_with_many_boxes():
    """A gateway with many boxes finds each packet's session by its SPI: an unknown SPI is
    dropped, every box's traffic reaches its own session, the maps hold every SPI."""
    cfg = LinkConfig()
    psks = dict((b"box%d" % i, b"%02d" % i * 16) for i in range(6))
    gw = Endpoint(cfg, b"gw1", psks=psks)
    boxes = [Endpoint(cfg, b"box%d" % i, psk=psks[b"box%d" % i], expect_peer=b"gw1") for i in range(6)]
    nets = [netsim.Net(b, gw) for b in boxes]
    for net in nets:
        net.connect(settle_ms=200)
    assert len(gw.sessions) == 6 and len(gw._spis) == 12
    for i, net in enumerate(nets):
        net.a.send(b"from %d" % i, net.now)
        net.run_for(50)
        assert net.got[id(gw)][-1] == b"from %d" % i
    gw.receive(b"\x12\x34\x56\x78" + bytes(40), nets[0].now)
    assert "unknown SPI 12345678" in gw.take_events()[-1].get("reason")
    boxes[2].close(nets[2].now)
    nets[2].run_for(100)
    assert len(gw.sessions) == 5 and len(gw._spis) == 10 and b"box2" not in gw._peers
