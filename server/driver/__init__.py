"""server/driver"""
