x25519_backend = None  # a port's faster X25519 (gwbox.crypto.x25519.use): here, it survives the module's reloads
# X25519's native code's verdict, from its check at the first import since boot
# (gwbox.crypto.x25519_check): "native", or "failed" (misplaced or a wrong known answer: the
# integer ladder runs instead, and the native module is not loaded again this boot). None
# until then (or while no room was found to check it).
x25519_native = None
