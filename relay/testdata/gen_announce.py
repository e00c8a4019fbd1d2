# Generates announce_python.json: ANNOUNCE messages built and signed the way
# the reference agent does (connectonion/network/announce.py): the signature
# covers json.dumps(message, sort_keys=True) with the default separators and
# ensure_ascii, and the frame sent is json.dumps(message). Run from this
# directory: python3 gen_announce.py > announce_python.json
import json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

seed = bytes(range(1, 33))
key = Ed25519PrivateKey.from_private_bytes(seed)
pub = key.public_key().public_bytes_raw()
address = "0x" + pub.hex()

def announce(**fields):
    msg = {"type": "ANNOUNCE", "address": address, "timestamp": 1760000000}
    msg.update(fields)
    signed = json.dumps(msg, sort_keys=True).encode("utf-8")
    msg["signature"] = key.sign(signed).hex()
    return json.dumps(msg)

vectors = {
    "seed_hex": seed.hex(),
    "address": address,
    "now": 1760000010,
    "frames": [
        announce(summary="I translate text between 100+ languages", endpoints=["http://192.168.1.5:8000", "ws://192.168.1.5:8000/ws"], relay="wss://oo.openonion.ai"),
        announce(summary="Traduzco — 翻译 <&> \"quotes\" \u007f 😀", endpoints=[], relay=None,
                 profile={"alias": "translator", "tools": ["translate", "detect_language"], "model": "gpt-4o-mini",
                          "skills": [{"name": "tr", "description": "what language is '你好' in?"}], "version": 1.0, "ratio": 1e-07}),
    ],
}
print(json.dumps(vectors, indent=1))
