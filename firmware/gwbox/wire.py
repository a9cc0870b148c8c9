"""Wire format constants: ISAKMP/IKE-style messages, sized for a 9,600 baud modem.

Two shapes travel in a frame (docs/protocol.md documents every byte):

* cleartext handshake message: marker 0x00, SPIi, SPIr, next payload, version,
  exchange type, flags, message id, length, payload chain.
* protected packet (once an SA exists, like ESP next to IKE): SPI, sequence
  number, ciphertext, ICV. Its plaintext on the control SA is an *inner message*
  (next payload, exchange type, flags, message id, payload chain); on the data
  SA it is a next-header byte and the tunnel payload.

SPIs are chosen with a non-zero first byte, so byte 0 tells the two shapes apart.
The message codec lives in gwbox.message: a session needs it only for control messages
(rekey, delete), a key exchange for its handshake, so it is loaded while those run.
"""
from gwbox import const


MARKER = const(0x00)
HEADER_LEN = const(19)  # marker 1 + SPIi 4 + SPIr 4 + next 1 + version 1 + exch 1 + flags 1 + msgid 4 + length 2
INNER_LEN = const(7)  # next 1 + exch 1 + flags 1 + msgid 4
PROT_HEADER_LEN = const(8)  # SPI 4 + seq 4
ICV_LEN = const(16)

# exchange types (IKEv2 numbers where the meaning matches; QUICK as in IKEv1)
EXCH_QUICK = const(32)
EXCH_SA_INIT = const(34)
EXCH_AUTH = const(35)
EXCH_REKEY = const(36)
EXCH_INFO = const(37)
EXCHANGES = (EXCH_QUICK, EXCH_SA_INIT, EXCH_AUTH, EXCH_REKEY, EXCH_INFO)

# flags (IKEv2 bit positions)
FLAG_INITIATOR = const(0x08)  # sender is the original initiator of the control SA
FLAG_RESPONSE = const(0x20)

# payload types (ISAKMP numbers)
PL_SA = const(1)
PL_KE = const(4)
PL_ID = const(5)
PL_AUTH = const(8)  # ISAKMP "hash" payload, here a PSK MAC over the transcript
PL_NONCE = const(10)
PL_NOTIFY = const(11)
PL_DELETE = const(12)
PAYLOAD_TYPES = (PL_SA, PL_KE, PL_ID, PL_AUTH, PL_NONCE, PL_NOTIFY, PL_DELETE)

# transforms inside a proposal: (type, id)
TF_ENCR = const(1)
TF_INTEG = const(3)
TF_DH = const(4)
DH_X25519 = const(31)  # IKEv2 group number for Curve25519

# notify types
_N_INVALID_SYNTAX = const(7)
N_NO_PROPOSAL_CHOSEN = const(14)
N_AUTHENTICATION_FAILED = const(24)
N_COOKIE = const(16390)  # IKEv2's COOKIE: a responder under load answers SA_INIT with one
N_EPOCH = const(40960)  # private use: the box's boot epoch (4 bytes) in msg3; new epoch = new message numbers

# delete protocol ids
PROTO_CONTROL = const(1)

# Data-SA next-header values: what follows in the plaintext (docs/protocol.md).
NH_DATA = const(1)  # raw payload, best effort
NH_MSG = const(2)  # box -> gateway: space(1) number(4) destination(4) port(2) payload; confirmed
NH_CONFIRM = const(3)  # gateway -> box: space(1) top(4) bits(4): numbers handed on
NH_REPLY = const(4)  # gateway -> box: source(4) port(2) payload, from a target host
NH_HB = const(5)  # heartbeat request: id(1)
NH_HB_ACK = const(6)  # heartbeat answer: the request's id(1)

SPI_ECHO = const(0xFFFFFFFF)  # GB 2 363 548's unprotected heartbeat SPI (compatibility option)

ID_KEY_ID = const(11)
AUTH_PSK_MAC = const(2)
NONCE_LEN = const(16)
KE_LEN = const(32)


