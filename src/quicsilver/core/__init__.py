"""quicsilver.core"""
