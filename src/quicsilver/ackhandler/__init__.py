"""quicsilver.ackhandler"""
