"""quicsilver.sys"""
