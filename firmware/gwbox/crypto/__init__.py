x25519_backend = None  # a port's faster X25519 (gwbox.crypto.x25519.use): here, it survives the module's reloads
# X25519's field arithmetic in use (gwbox.crypto.x25519 sets it at import; the status shows
# it): "native", "bytecode", or "failed" (the native module gave a wrong known answer, so the
# bytecode ladder runs instead, for the rest of this boot). None until X25519 is first loaded.
x25519_native = None
