"""server/driver/memory"""
