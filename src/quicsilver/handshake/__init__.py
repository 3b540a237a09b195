"""quicsilver.handshake"""
