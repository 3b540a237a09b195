"""quicsilver.wire"""
