x25519_backend = None  # a port's faster X25519 (gwbox.crypto.x25519.use): here, it survives the module's reloads
