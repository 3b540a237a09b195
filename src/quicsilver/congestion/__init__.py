"""quicsilver.congestion"""
