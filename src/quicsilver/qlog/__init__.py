"""quicsilver.qlog"""
