"""quicsilver.handshake.tls"""
