"""quicsilver.apps"""
