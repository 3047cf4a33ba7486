# PyKCS11 (Debian's python3-pykcs11) on the cluster's token, run by test/pkcs11/python_pykcs11.test.ts:
# usage: pykcs11_use.py MODULE PIN LABEL. Makes an EC P-256 pair and an AES-256 key as token objects,
# signs a SHA-256 digest with CKM_ECDSA and verifies it, round-trips two blocks through CKM_AES_ECB,
# finds the pair by label, reads attributes (every standard one the private key has, as a list),
# draws random bytes and destroys the AES key. Prints one "name value" line per result.
import hashlib
import sys

import PyKCS11

module, pin, label = sys.argv[1:4]
lib = PyKCS11.PyKCS11Lib()
lib.load(module)
slot = lib.getSlotList(tokenPresent=True)[0]
print("token", lib.getTokenInfo(slot).label.strip())
s = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
s.login(pin)
P256 = bytes.fromhex("06082a8648ce3d030107")
pub, priv = s.generateKeyPair(
    [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_VERIFY, True),
     (PyKCS11.CKA_EC_PARAMS, P256), (PyKCS11.CKA_LABEL, label)],
    [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_SIGN, True),
     (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_LABEL, label)],
    mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
digest = hashlib.sha256(label.encode()).digest()
ecdsa = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
signature = bytes(s.sign(priv, digest, ecdsa))
print("signature", signature.hex())
print("verified", s.verify(pub, digest, signature, ecdsa))
print("forged", s.verify(pub, hashlib.sha256(b"other").digest(), signature, ecdsa))
point = bytes(s.getAttributeValue(pub, [PyKCS11.CKA_EC_POINT], allAsBinary=True)[0])
print("point", point.hex())
aes = s.generateKey([(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                     (PyKCS11.CKA_VALUE_LEN, 32), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_ENCRYPT, True),
                     (PyKCS11.CKA_DECRYPT, True), (PyKCS11.CKA_LABEL, label + "-aes")],
                    PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None))
blocks = bytes(range(32))
ecb = PyKCS11.Mechanism(PyKCS11.CKM_AES_ECB, None)
ciphertext = bytes(s.encrypt(aes, blocks, ecb))
print("ecb-roundtrip", bytes(s.decrypt(aes, ciphertext, ecb)) == blocks and ciphertext != blocks)
found = s.findObjects([(PyKCS11.CKA_LABEL, label)])
print("found", sorted(int(s.getAttributeValue(o, [PyKCS11.CKA_CLASS])[0]) for o in found))
# The standard attributes, as a list in one call, less the three templates p11-kit 0.24's client
# cannot carry (docs/pkcs11.md): PyKCS11 asks for their lengths first, then their values.
standard = sorted(a for a in PyKCS11.CKA.keys() if isinstance(a, int) and a < 0x40000000)
values = s.getAttributeValue(priv, standard)
print("attributes", sum(1 for v in values if v is not None))
print("random", len(bytes(s.generateRandom(32))))
s.destroyObject(aes)
print("destroyed", len(s.findObjects([(PyKCS11.CKA_LABEL, label + "-aes")])))
s.logout()
s.closeSession()
