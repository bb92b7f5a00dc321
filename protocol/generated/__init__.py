"""protocol/generated"""
