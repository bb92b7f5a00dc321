"""protocol/xdrc"""
